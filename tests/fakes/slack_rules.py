"""What Slack's Web API demands of a caller, as data the fake Slack server checks: which token
types each method takes, which scopes it needs, and its rate tier.

Written from Slack's method reference pages (https://docs.slack.dev/reference/methods/<method>,
formerly https://api.slack.com/methods/<method>; the "Facts" box: token types, scopes, rate
limits), read 2026-08 via the docs' machine-readable copies. Deliberately NOT taken from the
product (adapters/slack/*): the fake must be able to tell the product it asked for too little.

Deviations and guesses are marked:
- ``apps.connections.open``: docs.slack.dev says "No scopes required" for the method, but the
  app-level token must hold ``connections:write`` (https://docs.slack.dev/reference/scopes/
  connections.write): that is what the fake checks. Tier 3 on docs.slack.dev (api.slack.com
  said Tier 1).
- ``assistant.threads.setStatus``: accepts ``chat:write`` or (for now) ``assistant:write``
  (https://docs.slack.dev/changelog/2026/03/05/set-status-scope-update).
- ``auth.test``: no scope; which token types it takes beyond bot and user is not on the page
  (unverified: the fake also lets an app-level token call it).
- ``conversations.*``: the page lists one scope per conversation type; the fake asks for the
  one matching the channel (``needed`` names that one; unverified against live Slack).
- ``files.*``: Tier 4 for files.info, getUploadURLExternal and completeUploadExternal (their
  pages). The bytes behind ``url_private_download`` need a token with ``files:read``.
- "Special" tiers (``chat.postMessage`` about 1 message a second per channel, with short
  bursts; ``auth.test``, ``chat.getPermalink``, ``assistant.threads.setStatus``) have no
  per-minute number: the fake limits only chat.postMessage (per channel) among them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BOT = "bot"  # xoxb-
USER = "user"  # xoxp-
APP = "app"  # xapp- (app-level token)

# Requests a minute per method per workspace (https://docs.slack.dev/apis/web-api/rate-limits):
# Tier 1 1+, Tier 2 20+, Tier 3 50+, Tier 4 100+.
TIER_PER_MINUTE: Mapping[int, int] = {1: 1, 2: 20, 3: 50, 4: 100}
SPECIAL = 0  # "Special rate limits apply"

_HISTORY = {
    "channel": "channels:history",
    "group": "groups:history",
    "im": "im:history",
    "mpim": "mpim:history",
}
_READ = {"channel": "channels:read", "group": "groups:read", "im": "im:read", "mpim": "mpim:read"}


@dataclass(frozen=True)
class Rule:
    """One method's demands. ``scopes``: any one of them suffices; ``by_kind``: the scope
    depends on the conversation's type (channel, group, im, mpim) instead."""

    tokens: frozenset[str]
    tier: int
    scopes: tuple[str, ...] = ()
    by_kind: Mapping[str, str] = field(default_factory=dict)


def _rule(tokens: str, tier: int, *scopes: str, by_kind: Mapping[str, str] | None = None) -> Rule:
    return Rule(frozenset(tokens.split()), tier, scopes, dict(by_kind or {}))


RULES: Mapping[str, Rule] = {
    "auth.test": _rule("bot user app", SPECIAL),
    "apps.connections.open": _rule("app", 3, "connections:write"),
    "chat.postMessage": _rule("bot user", SPECIAL, "chat:write"),
    "chat.update": _rule("bot user", 3, "chat:write"),
    "chat.delete": _rule("bot user", 3, "chat:write"),
    "chat.postEphemeral": _rule("bot user", 4, "chat:write"),
    "chat.getPermalink": _rule("bot user", SPECIAL),
    "chat.startStream": _rule("bot", 2, "chat:write"),
    "chat.appendStream": _rule("bot", 4, "chat:write"),
    "chat.stopStream": _rule("bot", 2, "chat:write"),
    "assistant.threads.setStatus": _rule("bot", SPECIAL, "chat:write", "assistant:write"),
    "assistant.threads.setSuggestedPrompts": _rule("bot", 4, "assistant:write"),
    "assistant.threads.setTitle": _rule("bot", 4, "assistant:write"),
    "conversations.replies": _rule("bot user", 3, by_kind=_HISTORY),
    "conversations.history": _rule("bot user", 3, by_kind=_HISTORY),
    "conversations.info": _rule("bot user", 3, by_kind=_READ),
    "users.info": _rule("bot user", 4, "users:read"),
    "usergroups.users.list": _rule("bot user", 2, "usergroups:read"),
    # files:read also lets a token fetch url_private(_download) (the file object's page).
    "files.info": _rule("bot user", 4, "files:read"),
    "files.getUploadURLExternal": _rule("bot user", 4, "files:write"),
    "files.completeUploadExternal": _rule("bot user", 4, "files:write"),
}

# Per-minute limits of the methods with a numbered tier (chat.postMessage is per channel).
TIER_LIMITS: Mapping[str, int] = {
    method: TIER_PER_MINUTE[rule.tier] for method, rule in RULES.items() if rule.tier
}


def token_kind(token: str) -> str | None:
    """The token's type from its prefix, as Slack issues them; None: not a Slack token."""
    for prefix, kind in (("xoxb-", BOT), ("xoxp-", USER), ("xapp-", APP)):
        if token.startswith(prefix):
            return kind
    return None


def refusal(method: str, kind: str, granted: list[str], conversation: str) -> dict[str, Any] | None:
    """Slack's error body when a ``kind`` token holding ``granted`` may not call ``method``
    (on a conversation of type ``conversation``), else None. The method must be in RULES."""
    rule = RULES[method]
    if kind not in rule.tokens:
        return {"ok": False, "error": "not_allowed_token_type"}
    needed = (rule.by_kind[conversation],) if rule.by_kind else rule.scopes
    if not needed or any(scope in granted for scope in needed):
        return None
    return {
        "ok": False,
        "error": "missing_scope",
        "needed": ",".join(needed),
        "provided": ",".join(granted),
    }


__all__ = ["APP", "BOT", "RULES", "SPECIAL", "TIER_LIMITS", "TIER_PER_MINUTE", "USER", "Rule"]
