"""Which Slack events get an answer, table-style, on recorded payload shapes."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.files import DELETED, EXTERNAL, HIDDEN, NO_LINK, unresolved
from adapters.slack.inbound import decide, parse
from bridge.events import FileRef

BOT = "UBOT"


def body(**event: Any) -> dict[str, Any]:
    if "event" in event:
        return {"team_id": "T1", "event": event["event"]}
    base = {"type": "message", "user": "U1", "text": "hi", "ts": "2.0", "channel": "C1"}
    return {"team_id": "T1", "event": base | event}


@pytest.mark.parametrize(
    ("payload", "known", "answer", "context"),
    [
        (body(text=f"<@{BOT}> hi"), False, True, False),  # mention in a channel
        (body(type="app_mention", text=f"<@{BOT}> hi"), False, True, False),
        (body(text="hi"), False, False, False),  # channel chatter
        (body(text="more", thread_ts="1.0"), True, True, False),  # follow-up in its thread
        (body(text="more", thread_ts="1.0"), False, False, False),  # someone else's thread
        (body(text=f"<@{BOT}> sum up", thread_ts="1.0"), False, True, True),  # joins late
        (body(channel="D1", channel_type="im"), False, True, False),  # DM
        (body(channel="D1", channel_type="im", thread_ts="1.0"), False, True, True),
        (body(user=BOT, text=f"<@{BOT}> echo"), False, False, False),  # itself
    ],
)
def test_decide(payload: dict[str, Any], known: bool, answer: bool, context: bool) -> None:
    message = parse(payload)
    assert message is not None
    decision = decide(message, BOT, known_thread=known)
    assert (decision.answer, decision.needs_context) == (answer, context)


@pytest.mark.parametrize(
    "payload",
    [
        body(bot_id="B2", text=f"<@{BOT}> loop"),
        body(subtype="bot_message", text=f"<@{BOT}> loop"),
        body(subtype="message_changed"),
        body(subtype="message_deleted"),
        body(subtype="channel_join"),
        body(text=f"<@{BOT}> hi", user=None),
        body(event="not an event"),
        {"event": {"type": "reaction_added"}},
    ],
)
def test_not_a_question(payload: dict[str, Any]) -> None:
    assert parse(payload) is None


def test_one_delivery_id_for_message_and_mention() -> None:
    a = parse(body(text=f"<@{BOT}> x"))
    b = parse(body(type="app_mention", text=f"<@{BOT}> x"))
    assert a is not None and b is not None
    assert a.delivery_id == b.delivery_id == "C1:2.0"
    assert a.thread == "2.0"


@pytest.mark.parametrize(
    ("payload", "known", "answer"),
    [
        (body(type="app_mention", text=f"<@{BOT}>"), False, True),  # a bare mention: the hint
        (body(text=""), False, False),  # empty channel chatter stays ignored
        (body(text="   ", thread_ts="1.0"), False, False),
        (body(text="", subtype="file_share", files=[{}], thread_ts="1.0"), True, True),
        (body(channel="D1", channel_type="im", text="", files=[{}]), False, True),
    ],
)
def test_empty_text_reaches_the_core_when_answered(
    payload: dict[str, Any], known: bool, answer: bool
) -> None:
    message = parse(payload)
    assert message is not None
    assert decide(message, BOT, known_thread=known).answer is answer


PNG = {
    "id": "F1",
    "name": "shot.png",
    "title": "shot.png",
    "mimetype": "image/png",
    "filetype": "png",
    "size": 2048,
    "mode": "hosted",
    "is_external": False,
    "url_private": "https://files.slack.com/files-pri/T1-F1/shot.png",
    "url_private_download": "https://files.slack.com/files-pri/T1-F1/download/shot.png",
}


def test_files_are_described_as_slack_gives_them() -> None:
    shared = parse(body(text=f"<@{BOT}> look", subtype="file_share", files=[PNG]))
    mention = parse(body(type="app_mention", text=f"<@{BOT}> look", files=[PNG]))
    plain = parse(body(text=f"<@{BOT}> look"))
    odd = parse(body(text=f"<@{BOT}> look", files="not a list"))
    png = FileRef("F1", "shot.png", "image/png", 2048, PNG["url_private_download"])
    assert [m.files if m else None for m in (shared, mention, plain, odd)] == [
        (png,),
        (png,),
        (),
        (),
    ]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"mode": "tombstone"}, DELETED),
        ({"mode": "hidden_by_limit"}, HIDDEN),
        ({"mode": "external", "is_external": True}, EXTERNAL),
        ({"url_private": None, "url_private_download": None}, NO_LINK),
    ],
)
def test_a_file_slack_will_not_give_carries_its_reason(
    changes: dict[str, Any], problem: str
) -> None:
    message = parse(body(subtype="file_share", files=[PNG | changes]))
    assert message is not None
    (file,) = message.files
    assert (file.id, file.problem, file.url) == ("F1", problem, "")


def test_a_slack_connect_file_waits_for_files_info() -> None:
    stub = {"id": "F9", "mode": "file_access", "file_access": "check_file_info", "user": ""}
    message = parse(body(subtype="file_share", files=[stub]))
    assert message is not None
    (file,) = message.files
    assert (file.id, file.url, file.problem) == ("F9", "", "") and unresolved(file)


def test_the_authors_team_and_org_as_the_event_gives_them() -> None:
    connect = parse(body(user_team="T9", source_team="T9", team="T9"))
    source_only = parse(body(source_team="T8"))
    grid = parse({"team_id": "T1", "enterprise_id": "E1", "event": body()["event"]})
    home = parse(body())
    assert connect is not None and source_only is not None and grid is not None
    assert home is not None
    assert (connect.team, connect.user_team, connect.enterprise) == ("T1", "T9", None)
    assert source_only.user_team == "T8"
    assert (grid.enterprise, home.user_team, home.enterprise) == ("E1", None, None)


@pytest.mark.parametrize(
    ("payload", "known", "respond_to", "answer"),
    [
        # "all": every new top-level message opens a thread and is answered…
        (body(text="lunch anyone?"), False, "all", True),
        (body(text=f"<@{BOT}> hi"), False, "all", True),
        # …but not someone else's thread, an empty post, or a bot (parse drops bots).
        (body(text="more", thread_ts="1.0"), False, "all", False),
        (body(text="", subtype="file_share", files=[{}]), False, "all", False),
        # …but a file alone is a question.
        (body(text="", subtype="file_share", files=[PNG]), False, "all", True),
        (body(user=BOT, text="my own answer"), False, "all", False),
        (body(text="more", thread_ts="1.0"), True, "all", True),
        # "off": nothing, not a mention, not a thread the bot is in...
        (body(text=f"<@{BOT}> hi"), False, "off", False),
        (body(text="more", thread_ts="1.0"), True, "off", False),
        # ...but DMs follow BRIDGE_ALLOW_DMS, as on Discord (a [defaults] "off").
        (body(channel="D1", channel_type="im"), False, "off", True),
        # "mentions" (the default) is today's rule.
        (body(text="lunch anyone?"), False, "mentions", False),
        (body(text=f"<@{BOT}> hi"), False, "mentions", True),
    ],
)
def test_respond_to(payload: dict[str, Any], known: bool, respond_to: Any, answer: bool) -> None:
    message = parse(payload)
    assert message is not None
    decision = decide(message, BOT, known_thread=known, respond_to=respond_to)
    assert decision.answer is answer
    assert not decision.needs_context or message.thread_ts is not None
