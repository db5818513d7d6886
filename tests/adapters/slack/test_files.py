"""Files both ways, real Bolt against the local Slack: a person's files reach the core
described and downloadable (streamed, with the bot token), files Slack will not give
carry a reason a person understands, and an answer's files land in its thread."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import pytest

from adapters.slack.app import SCOPES, Identity, SlackAdapter
from adapters.slack.files import (
    CHUNK,
    CONNECT,
    DELETED,
    FORBIDDEN,
    GONE,
    HIDDEN,
    NOT_ALLOWED,
    NOT_SLACK,
)
from bridge import metrics
from bridge.channels import ChannelRules, Channels
from bridge.errors import FileUnavailable, PlatformFailed
from bridge.events import FileRef, PlatformEvent
from bridge.reply import OutFile
from tests.adapters.slack.test_app import FakeCore, deliver, settings
from tests.fakes.slack_server import TEAM_ID, FakeSlack

TOKEN = "xoxb-test"  # what settings() gives the adapter
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 800  # ~200 KB


@pytest.fixture
async def adapter(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SlackAdapter, FakeCore]]:
    for name in list(os.environ):
        if name.upper().startswith(("SLACK_", "BRIDGE_")):
            monkeypatch.delenv(name)
    core = FakeCore(fake)
    slack = SlackAdapter(core, settings(fake))
    await slack.start()
    yield slack, core
    await slack.stop()
    await slack.close()


async def read(slack: SlackAdapter, file: FileRef) -> list[bytes]:
    return [chunk async for chunk in slack.download(file)]


async def unavailable(slack: SlackAdapter, file: FileRef) -> str:
    with pytest.raises(FileUnavailable) as exc:
        await read(slack, file)
    return exc.value.reason


async def asked(
    fake: FakeSlack, slack: SlackAdapter, core: FakeCore, text: str, *files: object, **kw: str
) -> PlatformEvent:
    _, message, mention = fake.user_says(kw.pop("channel", "C1"), "U1", text, files=files, **kw)  # type: ignore[arg-type]
    await deliver(fake, slack, message, mention)
    await fake.wait_for(lambda: core.events, what="the question queued")
    return core.events[-1]


async def test_a_png_with_text_reaches_the_core_described_and_downloads_exactly(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore], caplog: pytest.LogCaptureFixture
) -> None:
    slack, core = adapter
    caplog.set_level(logging.DEBUG)
    shot = fake.add_file("shot.png", PNG)
    event = await asked(fake, slack, core, "<@UBOT> what is on this screen?", shot)
    assert event.text == "what is on this screen?"
    (file,) = event.files
    assert (file.id, file.name, file.mimetype, file.size, file.problem) == (
        shot.id,
        "shot.png",
        "image/png",
        len(PNG),
        "",
    )
    assert file.url.endswith(f"{TEAM_ID}-{shot.id}/download/shot.png") and TOKEN not in file.url
    downloads = metrics.PLATFORM_CALLS.labels("slack", "files.download", "ok")
    before = downloads._value.get()
    assert b"".join(await read(slack, file)) == PNG
    assert fake.file_store.downloads == [(shot.id, True)]  # with the bot token
    assert downloads._value.get() == before + 1  # counted in /metrics like other calls
    # The question is answered with its file: no "attachments are not read" notice.
    await asyncio.sleep(0.2)
    assert fake.ephemerals == []
    assert TOKEN not in caplog.text


async def test_a_file_alone_is_a_question(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    log_file = fake.add_file("crash.log", b"Traceback: boom\n")
    event = await asked(fake, slack, core, "", log_file, channel="D1")
    assert (event.text, [f.name for f in event.files]) == ("", ["crash.log"])
    assert b"".join(await read(slack, event.files[0])) == b"Traceback: boom\n"


async def test_a_file_alone_opens_a_thread_where_every_message_is_answered(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    core.channels = Channels(by_id={"CALL": ChannelRules(respond_to="all")})
    event = await asked(fake, slack, core, "", fake.add_file("diagram.png", PNG), channel="CALL")
    assert [f.name for f in event.files] == ["diagram.png"]


async def test_slack_connect_files_are_looked_up_or_named_unreadable(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    shared = fake.add_file("their.csv", b"a,b\n1,2\n", connect=True)
    kept = fake.add_file("secret.pdf", connect=True, info_refused=True)
    event = await asked(fake, slack, core, "<@UBOT> compare", shared, kept)
    prepared = await slack.prepare(event)
    readable, refused = prepared.files
    assert (readable.id, readable.name, readable.mimetype, readable.problem) == (
        shared.id,
        "their.csv",
        "text/csv",
        "",
    )
    assert b"".join(await read(slack, readable)) == b"a,b\n1,2\n"
    assert (refused.id, refused.problem) == (kept.id, CONNECT)
    assert await unavailable(slack, refused) == CONNECT
    # Never asked for without files.info's answer: the core sees no link to guess at.
    assert [d[0] for d in fake.file_store.downloads] == [shared.id]


async def test_files_slack_will_not_give_say_why(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore], caplog: pytest.LogCaptureFixture
) -> None:
    slack, core = adapter
    caplog.set_level(logging.DEBUG)
    hidden = fake.add_file("old.png", mode="hidden_by_limit")
    deleted = fake.add_file("gone.png", mode="tombstone")
    expired = fake.add_file("later.png")
    event = await asked(fake, slack, core, "<@UBOT> and these?", hidden, deleted, expired)
    expired.removed = True  # deleted (or expired) after the message was sent
    by_id = {f.id: f for f in event.files}
    assert (by_id[hidden.id].problem, by_id[deleted.id].problem) == (HIDDEN, DELETED)
    assert await unavailable(slack, by_id[hidden.id]) == HIDDEN
    assert await unavailable(slack, by_id[expired.id]) == GONE
    # A token Slack will not take for files: its sign-in page, not the file.
    fake.scopes.remove("files:read")
    expired.removed = False
    with pytest.raises(FileUnavailable) as exc:
        await read(slack, by_id[expired.id])
    assert exc.value.reason == NOT_ALLOWED and TOKEN not in str(exc.value)
    expired.forbidden = True
    fake.scopes.append("files:read")
    assert await unavailable(slack, by_id[expired.id]) == FORBIDDEN
    assert TOKEN not in caplog.text


async def test_the_token_goes_to_slack_only(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, _ = adapter
    elsewhere = FileRef("F1", "x.png", "image/png", 3, "https://collector.example/x.png")
    assert await unavailable(slack, elsewhere) == NOT_SLACK


async def test_a_download_streams_in_chunks(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    data = os.urandom(1024 * 1024)
    big = fake.add_file("dump.bin", data, hold=asyncio.Event())
    event = await asked(fake, slack, core, "<@UBOT> what is in it?", big)
    chunks = slack.download(event.files[0])
    # A download that waited for the whole file would wait here until the timeout.
    first = await asyncio.wait_for(anext(chunks), 5)
    # The first piece reaches the core while Slack still holds back the rest of the file.
    assert big.served_chunks == 1 and 0 < len(first) <= CHUNK
    assert big.hold is not None
    big.hold.set()
    rest = [chunk async for chunk in chunks]
    assert first + b"".join(rest) == data
    assert len(rest) >= len(data) // CHUNK - 1 and max(len(c) for c in rest) <= CHUNK


async def test_an_answers_image_is_posted_into_its_thread(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    event = await asked(fake, slack, core, "<@UBOT> draw a cat")

    async def save(ids: object) -> None:
        pass

    before = metrics.PLATFORM_CALLS.labels(
        "slack", "files.completeUploadExternal", "ok"
    )._value.get()
    reply = slack.reply(event, [], save)
    await reply.start()
    await reply.finish("Here is your cat.")
    cat = b"\x89PNG\r\n\x1a\n" + b"meow" * 5000
    await reply.attach(
        [OutFile("cat.png", "image/png", cat, title="A cat"), OutFile("chart", "image/png", cat)]
    )
    thread = event.thread.thread
    answer, image = fake.bot_replies("C1", thread)
    # Both in one message; a name without an extension gets its type's, as Slack needs.
    assert [fake.file_store.files[f].name for f in image.files] == ["cat.png", "chart.png"]
    assert answer.text == "Here is your cat."
    stored = fake.file_store.files[image.files[0]]
    assert (stored.data, stored.title, stored.name, stored.mimetype) == (
        cat,
        "A cat",
        "cat.png",
        "image/png",
    )
    assert (
        metrics.PLATFORM_CALLS.labels("slack", "files.completeUploadExternal", "ok")._value.get()
        == before + 1
    )


async def test_an_upload_slack_refuses_fails_the_attach(
    fake: FakeSlack, adapter: tuple[SlackAdapter, FakeCore]
) -> None:
    slack, core = adapter
    event = await asked(fake, slack, core, "<@UBOT> draw a dog")

    async def save(ids: object) -> None:
        pass

    reply = slack.reply(event, [], save)
    await reply.finish("Here is your dog.")
    fake.scopes.remove("files:write")
    with pytest.raises(PlatformFailed) as exc:
        await reply.attach([OutFile("dog.png", "image/png", b"woof")])
    assert "missing_scope" in str(exc.value)
    assert [m.text for m in fake.bot_replies("C1", event.thread.thread)] == ["Here is your dog."]


def test_a_token_without_the_file_scopes_is_told_what_to_add() -> None:
    older = frozenset(s for s in SCOPES if not s.startswith("files:"))
    assert Identity("UBOT", TEAM_ID, older).missing_scopes == ["files:read", "files:write"]
