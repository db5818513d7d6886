"""Who may ask the bot what: the operator's access settings judged against one
asker. Pure: the adapters look the facts up (and cache them); nothing here does I/O.

Every message is judged by its own author, so a thread an allowed person
started admits no one else. Deny lists win over allow lists; empty lists do not
restrict. The order of the checks decides which reason a refusal gives, not
whether it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class UserKind(StrEnum):
    MEMBER = "member"  # a full member of the workspace (every Discord user)
    GUEST = "guest"  # Slack multi- or single-channel guest
    EXTERNAL = "external"  # Slack Connect: a user of another organisation
    UNKNOWN = "unknown"  # the platform could not tell us (a failed look-up)


class Refusal(StrEnum):
    """Why a question is not answered. Values appear in logs."""

    WORKSPACE = "workspace not served"
    DIRECT = "direct messages are off"
    DENIED_USER = "user denied"
    DENIED_CHANNEL = "channel denied"
    CHANNEL = "channel not allowed"
    GUEST = "guests are not allowed"
    EXTERNAL = "external users are not allowed"
    UNVERIFIED = "user could not be verified"
    USER = "user not allowed"
    RATE = "rate limit"
    TOO_LONG = "question too long"
    BUSY = "thread busy"
    EMPTY = "no question"


# Refusals the bot answers with silence whatever the settings: a workspace the
# operator does not serve should not learn the bot is there.
SILENT = frozenset({Refusal.WORKSPACE})
# Refusals about who is asking: one notice per person per hour at most.
ACCESS = frozenset(
    {
        Refusal.DIRECT,
        Refusal.DENIED_USER,
        Refusal.DENIED_CHANNEL,
        Refusal.CHANNEL,
        Refusal.GUEST,
        Refusal.EXTERNAL,
        Refusal.UNVERIFIED,
        Refusal.USER,
    }
)


@dataclass(frozen=True)
class Asker:
    """The facts about one message's author and place, as the adapter found them."""

    workspace: str  # Slack team id / Discord guild id ("" when not known, e.g. a Discord DM)
    channel: str  # the channel (a thread's parent channel); "" in DMs
    user: str
    kind: UserKind = UserKind.MEMBER
    roles: frozenset[str] = frozenset()  # Discord role ids / Slack user-group ids held
    direct: bool = False  # a direct message
    roles_known: bool = True  # False when the role look-up failed


@dataclass(frozen=True)
class AccessPolicy:
    allowed_workspaces: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    denied_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    denied_users: frozenset[str] = frozenset()
    allowed_roles: frozenset[str] = frozenset()
    allow_dms: bool = True
    allow_guests: bool = False
    allow_external: bool = False

    @property
    def needs_kind(self) -> bool:
        """Whether a refusal can depend on the asker being a guest or external."""
        return not (self.allow_guests and self.allow_external)


def judge(policy: AccessPolicy, asker: Asker) -> Refusal | None:
    """None when ``asker`` may ask here, else the first reason they may not."""
    if policy.allowed_workspaces and asker.workspace not in policy.allowed_workspaces:
        return Refusal.WORKSPACE
    if asker.direct and not policy.allow_dms:
        return Refusal.DIRECT
    if asker.user in policy.denied_users:
        return Refusal.DENIED_USER
    if not asker.direct:
        if asker.channel in policy.denied_channels:
            return Refusal.DENIED_CHANNEL
        if policy.allowed_channels and asker.channel not in policy.allowed_channels:
            return Refusal.CHANNEL
    if asker.kind is UserKind.GUEST and not policy.allow_guests:
        return Refusal.GUEST
    if asker.kind is UserKind.EXTERNAL and not policy.allow_external:
        return Refusal.EXTERNAL
    if asker.kind is UserKind.UNKNOWN and policy.needs_kind:
        return Refusal.UNVERIFIED
    if policy.allowed_users or policy.allowed_roles:
        if asker.user in policy.allowed_users or asker.roles & policy.allowed_roles:
            return None
        if policy.allowed_roles and not asker.roles_known:
            return Refusal.UNVERIFIED
        return Refusal.USER
    return None


@dataclass(frozen=True)
class Limits:
    user_rate_limit: int = 20  # questions per user per minute; 0 = off
    max_question_chars: int = 32000
    max_queued_per_thread: int = 5  # unanswered questions a thread holds (running included)
    denied_notice: bool = True


def describe(policy: AccessPolicy, limits: Limits) -> str:
    """The effective settings as one paragraph a person can read (``check`` prints it)."""
    if policy.allowed_channels:
        where = f"Answers in {_count(len(policy.allowed_channels), 'channel')}"
    else:
        where = "Answers in every channel it is added to"
    if policy.denied_channels:
        where += f" except {_count(len(policy.denied_channels), 'channel')}"
    if policy.allowed_workspaces:
        count = _count(len(policy.allowed_workspaces), "workspace")
        where += f", only in {count} (silent elsewhere)"
    who = "to everyone"
    if policy.allowed_users or policy.allowed_roles:
        groups = []
        if policy.allowed_users:
            groups.append(_count(len(policy.allowed_users), "listed user"))
        if policy.allowed_roles:
            groups.append("holders of " + _count(len(policy.allowed_roles), "role"))
        who = "only to " + " and ".join(groups)
    if policy.denied_users:
        who += f" except {_count(len(policy.denied_users), 'user')}"
    parts = [
        f"{where}, {who}",
        "guests allowed" if policy.allow_guests else "no guests",
        "external (Slack Connect) users allowed" if policy.allow_external else "no external users",
        "DMs on" if policy.allow_dms else "DMs off",
        (
            f"{_count(limits.user_rate_limit, 'question')} per user per minute"
            if limits.user_rate_limit
            else "no per-user rate limit"
        ),
        f"questions up to {limits.max_question_chars:,} characters",
        f"up to {limits.max_queued_per_thread} questions waiting per thread",
        (
            "refused people get one short notice an hour"
            if limits.denied_notice
            else "refused people get silence"
        ),
    ]
    return "; ".join(parts) + "."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
