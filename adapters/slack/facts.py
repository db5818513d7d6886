"""What the bridge knows about Slack users: names for the model, and the facts the
access policy judges (guest, external, user groups).

One cache of ``users.info`` serves both, kept for ``TTL`` seconds (a guest made a
member is seen within minutes); failed look-ups are never cached, so the next
message tries again. Look-ups made while an event waits for its acknowledgement
are bounded by ``LOOKUP_TIMEOUT``: Slack expects the ack within three seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.inbound import SlackMessage
from adapters.slack.reply import CALL_ERRORS
from bridge.cache import Lookups
from bridge.policy import AccessPolicy, Asker, Refusal, UserKind, judge

log = logging.getLogger(__name__)

# A failed call, whatever failed: Slack refused, the network, or the SDK itself.
FAILED = (*CALL_ERRORS, SlackClientError)

TTL = 600.0  # seconds a user's facts (and a user group's members) are trusted
CACHE_SIZE = 5000  # users remembered; the oldest go first
LOOKUP_TIMEOUT = 2.0  # seconds for the look-ups that hold an event's acknowledgement

# Refusals that do not depend on who the asker is: no look-up can change them.
_PLACE = frozenset(
    {
        Refusal.WORKSPACE,
        Refusal.DIRECT,
        Refusal.DENIED_USER,
        Refusal.DENIED_CHANNEL,
        Refusal.CHANNEL,
    }
)

V = TypeVar("V")


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str  # what the model sees before the question
    team: str | None  # the user's home team
    enterprise: str | None = None  # the Enterprise Grid org the user belongs to
    guest: bool = False  # a multi- or single-channel guest
    bot: bool = False  # an app's bot user (its reactions are not a person's)


class Facts:
    """Look-ups about users and user groups, cached."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = TTL,
        timeout: float = LOOKUP_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._users: Lookups[str, SlackUser] = Lookups(ttl, CACHE_SIZE, clock)
        self._groups: Lookups[str, frozenset[str]] = Lookups(ttl, CACHE_SIZE, clock)

    def known(self, user_id: str) -> SlackUser | None:
        """The user as last looked up, without a call."""
        return self._users.peek(user_id)

    async def user(self, user_id: str, *, within: float | None = None) -> SlackUser | None:
        """The user (cached), or None when Slack could not tell us (within ``within`` s)."""
        return await self._users.get(user_id, lambda: self._user_info(user_id), within)

    async def name(self, user_id: str) -> str:
        """The user's display name; the id when the look-up fails."""
        user = await self.user(user_id)
        return user.name if user is not None else user_id

    async def asker(self, message: SlackMessage, policy: AccessPolicy) -> Asker:
        """The facts ``policy`` judges about ``message``'s author, looked up only as far
        as the policy needs them."""
        asker = Asker(
            workspace=message.team,
            channel="" if message.is_direct else message.channel,
            user=message.user,
            direct=message.is_direct,
        )
        if judge(policy, asker) in _PLACE:
            return asker  # refused wherever they come from: spare Slack the calls
        kind, (roles, known) = await asyncio.gather(
            self.kind(message, policy), self.roles(message.user, policy)
        )
        return Asker(
            workspace=asker.workspace,
            channel=asker.channel,
            user=asker.user,
            kind=kind,
            roles=roles,
            direct=asker.direct,
            roles_known=known,
        )

    async def kind(self, message: SlackMessage, policy: AccessPolicy) -> UserKind:
        """Member, guest or external, as far as ``policy`` cares; UNKNOWN if Slack
        could not say."""
        if not policy.needs_kind:
            return UserKind.MEMBER
        home = message.team
        hint = message.user_team
        if hint and hint != home and message.enterprise is None:
            # The event names another team: no call needed. (On Enterprise Grid
            # another team may be the same org, so that case asks Slack.)
            return UserKind.EXTERNAL
        if hint == home and policy.allow_guests:
            return UserKind.MEMBER  # at home, and guests do not matter
        user = await self.user(message.user, within=self._timeout)
        if user is None:
            return UserKind.UNKNOWN
        return kind_of(user, home, message.enterprise)

    async def roles(self, user_id: str, policy: AccessPolicy) -> tuple[frozenset[str], bool]:
        """The allowed user groups ``user_id`` is in, and whether every group answered."""
        groups = policy.allowed_roles
        if not groups or user_id in policy.allowed_users:
            return frozenset(), True
        members = await asyncio.gather(*(self._members(group) for group in sorted(groups)))
        held = frozenset(
            g for g, m in zip(sorted(groups), members, strict=True) if m and user_id in m
        )
        return held, all(m is not None for m in members)

    async def _members(self, group: str) -> frozenset[str] | None:
        return await self._groups.get(group, lambda: self._group_users(group), self._timeout)

    async def _user_info(self, user_id: str) -> SlackUser | None:
        try:
            response = await self._client.users_info(user=user_id)
        except FAILED as exc:
            log.info("cannot look up user %s: %s", user_id, describe(exc))
            return None
        return user_from(user_id, response.get("user") or {})

    async def _group_users(self, group: str) -> frozenset[str] | None:
        try:
            response = await self._client.usergroups_users_list(usergroup=group)
        except FAILED as exc:
            log.info("cannot list user group %s: %s", group, describe(exc))
            return None
        return frozenset(_strings(response.get("users")))


def user_from(user_id: str, user: dict[str, Any]) -> SlackUser:
    """``users.info``'s user object as the facts the bridge keeps."""
    profile = user.get("profile") or {}
    name = (
        profile.get("display_name")
        or profile.get("real_name")
        or user.get("real_name")
        or user.get("name")
        or user_id
    )
    enterprise = (user.get("enterprise_user") or {}).get("enterprise_id")
    return SlackUser(
        id=user_id,
        name=str(name),
        team=str(user.get("team_id") or profile.get("team") or "") or None,
        enterprise=str(enterprise) if enterprise else None,
        guest=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
        bot=bool(user.get("is_bot")),
    )


def kind_of(user: SlackUser, home: str, enterprise: str | None) -> UserKind:
    """Another organisation's user is external (a guest there or not); a restricted
    user at home is a guest."""
    elsewhere = bool(user.team) and bool(home) and user.team != home
    same_org = enterprise is not None and user.enterprise == enterprise
    if elsewhere and not same_org:
        return UserKind.EXTERNAL
    return UserKind.GUEST if user.guest else UserKind.MEMBER


def describe(exc: BaseException) -> str:
    """A failed call for the log: Slack's error code or the exception's kind, no secret."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return type(exc).__name__


def _strings(values: Any) -> Iterable[str]:
    return (str(v) for v in values) if isinstance(values, list) else ()
