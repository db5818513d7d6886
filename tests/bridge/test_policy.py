"""The access policy as a table: each row a setting (or a combination) and an asker."""

from __future__ import annotations

import pytest

from bridge.policy import (
    AccessPolicy,
    Asker,
    Limits,
    Refusal,
    UserKind,
    describe,
    judge,
)

S = frozenset


def asker(**values: object) -> Asker:
    base: dict[str, object] = {"workspace": "T1", "channel": "C1", "user": "U1"}
    return Asker(**(base | values))  # type: ignore[arg-type]


CHANNEL = asker()
DM = asker(channel="", direct=True)
GUEST = asker(kind=UserKind.GUEST)
EXTERNAL = asker(kind=UserKind.EXTERNAL)
UNKNOWN = asker(kind=UserKind.UNKNOWN)

# (name, policy, asker, expected refusal or None)
TABLE: list[tuple[str, AccessPolicy, Asker, Refusal | None]] = [
    # defaults: members anywhere, DMs on, no guests, no external users
    ("defaults: member in a channel", AccessPolicy(), CHANNEL, None),
    ("defaults: member in a DM", AccessPolicy(), DM, None),
    ("defaults: guest", AccessPolicy(), GUEST, Refusal.GUEST),
    ("defaults: external", AccessPolicy(), EXTERNAL, Refusal.EXTERNAL),
    ("defaults: unknown kind", AccessPolicy(), UNKNOWN, Refusal.UNVERIFIED),
    # workspaces
    ("workspace listed", AccessPolicy(allowed_workspaces=S({"T1"})), CHANNEL, None),
    (
        "workspace not listed",
        AccessPolicy(allowed_workspaces=S({"T2"})),
        CHANNEL,
        Refusal.WORKSPACE,
    ),
    (
        "DM from no known workspace",
        AccessPolicy(allowed_workspaces=S({"T1"})),
        asker(workspace="", channel="", direct=True),
        Refusal.WORKSPACE,
    ),
    # channels
    ("channel listed", AccessPolicy(allowed_channels=S({"C1"})), CHANNEL, None),
    ("channel not listed", AccessPolicy(allowed_channels=S({"C2"})), CHANNEL, Refusal.CHANNEL),
    ("channel denied", AccessPolicy(denied_channels=S({"C1"})), CHANNEL, Refusal.DENIED_CHANNEL),
    ("other channel denied", AccessPolicy(denied_channels=S({"C2"})), CHANNEL, None),
    (
        "channel both allowed and denied: deny wins",
        AccessPolicy(allowed_channels=S({"C1"}), denied_channels=S({"C1"})),
        CHANNEL,
        Refusal.DENIED_CHANNEL,
    ),
    ("channel lists do not apply to DMs", AccessPolicy(allowed_channels=S({"C2"})), DM, None),
    # DMs
    ("DMs off: DM", AccessPolicy(allow_dms=False), DM, Refusal.DIRECT),
    ("DMs off: channel", AccessPolicy(allow_dms=False), CHANNEL, None),
    # users
    ("user listed", AccessPolicy(allowed_users=S({"U1"})), CHANNEL, None),
    ("user not listed", AccessPolicy(allowed_users=S({"U2"})), CHANNEL, Refusal.USER),
    ("user denied", AccessPolicy(denied_users=S({"U1"})), CHANNEL, Refusal.DENIED_USER),
    ("user denied in a DM", AccessPolicy(denied_users=S({"U1"})), DM, Refusal.DENIED_USER),
    (
        "user both allowed and denied: deny wins",
        AccessPolicy(allowed_users=S({"U1"}), denied_users=S({"U1"})),
        CHANNEL,
        Refusal.DENIED_USER,
    ),
    ("allowed users also hold in DMs", AccessPolicy(allowed_users=S({"U2"})), DM, Refusal.USER),
    # roles
    ("role held", AccessPolicy(allowed_roles=S({"R1"})), asker(roles=S({"R1", "R9"})), None),
    ("role not held", AccessPolicy(allowed_roles=S({"R1"})), asker(roles=S({"R2"})), Refusal.USER),
    ("no roles at all", AccessPolicy(allowed_roles=S({"R1"})), CHANNEL, Refusal.USER),
    (
        "roles could not be looked up",
        AccessPolicy(allowed_roles=S({"R1"})),
        asker(roles_known=False),
        Refusal.UNVERIFIED,
    ),
    (
        "users or roles: listed user without the role",
        AccessPolicy(allowed_users=S({"U1"}), allowed_roles=S({"R1"})),
        CHANNEL,
        None,
    ),
    (
        "users or roles: role holder not on the user list",
        AccessPolicy(allowed_users=S({"U2"}), allowed_roles=S({"R1"})),
        asker(roles=S({"R1"})),
        None,
    ),
    (
        "users or roles: neither",
        AccessPolicy(allowed_users=S({"U2"}), allowed_roles=S({"R1"})),
        CHANNEL,
        Refusal.USER,
    ),
    (
        "denied user with an allowed role: deny wins",
        AccessPolicy(allowed_roles=S({"R1"}), denied_users=S({"U1"})),
        asker(roles=S({"R1"})),
        Refusal.DENIED_USER,
    ),
    (
        "allowed role in a denied channel: deny wins",
        AccessPolicy(allowed_roles=S({"R1"}), denied_channels=S({"C1"})),
        asker(roles=S({"R1"})),
        Refusal.DENIED_CHANNEL,
    ),
    # guests and external users
    ("guests on", AccessPolicy(allow_guests=True), GUEST, None),
    ("guests on, external still off", AccessPolicy(allow_guests=True), EXTERNAL, Refusal.EXTERNAL),
    ("external on", AccessPolicy(allow_external=True), EXTERNAL, None),
    ("external on, guests still off", AccessPolicy(allow_external=True), GUEST, Refusal.GUEST),
    (
        "both on: an unknown kind does not matter",
        AccessPolicy(allow_guests=True, allow_external=True),
        UNKNOWN,
        None,
    ),
    (
        "listed guest with guests off: the guest flag still applies",
        AccessPolicy(allowed_users=S({"U1"})),
        GUEST,
        Refusal.GUEST,
    ),
    ("guest in a DM", AccessPolicy(), asker(kind=UserKind.GUEST, direct=True), Refusal.GUEST),
    # combinations in the order the checks run
    (
        "workspace before everything",
        AccessPolicy(allowed_workspaces=S({"T2"}), allow_dms=False, denied_users=S({"U1"})),
        DM,
        Refusal.WORKSPACE,
    ),
    (
        "the usual setup: 2 channels, 1 denied user; an allowed member asks",
        AccessPolicy(allowed_channels=S({"C1", "C2"}), denied_users=S({"U9"})),
        CHANNEL,
        None,
    ),
    (
        "the usual setup: the denied user asks in an allowed channel",
        AccessPolicy(allowed_channels=S({"C1", "C2"}), denied_users=S({"U9"})),
        asker(user="U9"),
        Refusal.DENIED_USER,
    ),
    (
        "the usual setup: a guest in an allowed channel",
        AccessPolicy(allowed_channels=S({"C1", "C2"}), denied_users=S({"U9"})),
        GUEST,
        Refusal.GUEST,
    ),
    (
        "the usual setup: a member in another channel",
        AccessPolicy(allowed_channels=S({"C1", "C2"}), denied_users=S({"U9"})),
        asker(channel="C3"),
        Refusal.CHANNEL,
    ),
]


@pytest.mark.parametrize(
    ("policy", "who", "expected"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_policy_table(policy: AccessPolicy, who: Asker, expected: Refusal | None) -> None:
    assert judge(policy, who) == expected


def test_each_message_is_judged_by_its_own_author() -> None:
    # One thread (same workspace and channel): the allowed person who opened it does
    # not carry a denied person's follow-up.
    policy = AccessPolicy(denied_users=S({"U9"}))
    opener, follower = asker(user="U1"), asker(user="U9")
    assert [judge(policy, opener), judge(policy, follower)] == [None, Refusal.DENIED_USER]


def test_the_paragraph_check_prints() -> None:
    policy = AccessPolicy(allowed_channels=S({"C1", "C2"}), denied_users=S({"U9"}))
    assert describe(policy, Limits()) == (
        "Answers in 2 channels, to everyone except 1 user; no guests; no external users;"
        " DMs on; 20 questions per user per minute; questions up to 32,000 characters;"
        " up to 5 questions waiting per thread; refused people get one short notice an hour."
    )


def test_the_paragraph_with_everything_restricted() -> None:
    policy = AccessPolicy(
        allowed_workspaces=S({"T1"}),
        allowed_users=S({"U1", "U2"}),
        allowed_roles=S({"R1"}),
        allow_dms=False,
        allow_guests=True,
        allow_external=True,
    )
    text = describe(policy, Limits(user_rate_limit=0, max_question_chars=500, denied_notice=False))
    assert text == (
        "Answers in every channel it is added to, only in 1 workspace (silent elsewhere),"
        " only to 2 listed users and holders of 1 role; guests allowed;"
        " external (Slack Connect) users allowed; DMs off; no per-user rate limit;"
        " questions up to 500 characters; up to 5 questions waiting per thread;"
        " refused people get silence."
    )
