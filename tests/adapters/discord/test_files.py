"""Files on Discord, with real discord.py against the local Discord: a question's
attachments reach the core as ``FileRef``s whose bytes the adapter streams from the
CDN, and an answer's files land as attachments of its last message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from discord.utils import DEFAULT_FILE_SIZE_LIMIT_BYTES
from prometheus_client import REGISTRY

from adapters.discord import budget
from adapters.discord.app import DiscordAdapter
from adapters.discord.files import GONE, link_expired
from adapters.discord.metered import meter
from bridge.errors import FileUnavailable, PlatformFailed
from bridge.events import FileRef
from bridge.reply import OutFile
from tests.adapters.discord.conftest import Place
from tests.adapters.discord.discord_world import World, discord_world, next_event
from tests.fakes.discord_cdn import CHUNK, FakeFile
from tests.fakes.discord_server import BOT_USER_ID

MENTION = f"<@{BOT_USER_ID}>"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 1000  # 256 KB: several CDN chunks


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with discord_world() as world:
        yield world


async def read(adapter: DiscordAdapter, file: FileRef) -> list[bytes]:
    return [chunk async for chunk in adapter.download(file)]


async def test_a_png_with_text_reaches_the_core_and_downloads_in_chunks(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    said = fake.user_says(
        world.general,
        world.ada,
        f"{MENTION} what is on this screenshot?",
        files=[FakeFile("screen shot.png", PNG, "image/png")],
    )
    event = await next_event(world, 1)
    assert event.text == "what is on this screenshot?"
    (file,) = event.files
    assert (file.id, file.name, file.mimetype, file.size) == (
        said.attachments[0]["id"],
        "screen shot.png",
        "image/png",
        len(PNG),
    )
    assert file.url.startswith(fake.cdn.base_url) and "hm=" in file.url
    chunks = await read(adapter, file)
    assert b"".join(chunks) == PNG
    assert len(chunks) >= len(PNG) // CHUNK  # handed on as they came, not held whole
    await asyncio.sleep(0.1)
    assert fake.replies_to(said.id) == []  # no "files are not read" notice any more


async def test_a_message_with_only_an_attachment_is_a_question(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    said = fake.user_says(
        world.general, world.ada, MENTION, files=[FakeFile("notes.txt", b"hi\n", "text/plain")]
    )
    event = await next_event(world, 1)
    assert event.text == "" and [f.name for f in event.files] == ["notes.txt"]
    assert world.core.refused == []
    await asyncio.sleep(0.1)
    assert fake.replies_to(said.id) == []  # no refusal notice


async def test_an_expired_or_deleted_attachment_is_unavailable_with_a_reason(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    fake.user_says(world.general, world.ada, f"{MENTION} one", files=[FakeFile("a.png", PNG)])
    gone = fake.user_says(world.general, world.ada, f"{MENTION} 2", files=[FakeFile("b.png", PNG)])
    expired, deleted = (await next_event(world, 1)).files[0], (await next_event(world, 2)).files[0]
    fake.delete(gone.id)
    with pytest.raises(FileUnavailable) as error:
        await read(adapter, deleted)
    assert error.value.reason == GONE
    fake.cdn.expire_links()  # a day later: the links handed out are past their expiry
    with pytest.raises(FileUnavailable) as error:
        await read(adapter, expired)
    assert error.value.reason == GONE == "it is no longer on Discord (deleted, or its link expired)"
    assert fake.cdn.downloads == []  # nothing was served


def test_a_link_past_its_expiry_is_not_fetched() -> None:
    link = "https://cdn.discordapp.com/attachments/1/2/a.png?ex=65d903de&is=65c68ede&hm=ab&"
    assert link_expired(link, now=0x65D903DE + 1) and not link_expired(link, now=0x65D903DE - 1)
    assert not link_expired("https://cdn.discordapp.com/attachments/1/2/a.png")


# -- an answer's files ----------------------------------------------------------------

EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
FETCH = "GET /channels/{channel_id}/messages/{message_id}"


def calls(method: str) -> float:
    labels = {"platform": "discord", "method": method, "outcome": "ok"}
    return REGISTRY.get_sample_value("owui_bridge_platform_calls_total", labels) or 0.0


async def test_attach_puts_an_image_on_the_answers_last_message(place: Place) -> None:
    meter(place.client)
    budget.attach(place.client)
    edits, fetches = calls(EDIT), calls(FETCH)
    reply = place.reply()
    await reply.start()
    await reply.finish("a" * 1500 + "\n\n" + "b" * 1500)  # two messages
    first, last = place.fake.bot_messages(place.channel)
    await reply.attach([OutFile("chart.png", "image/png", PNG)])
    await reply.attach([OutFile("data.csv", "text/csv", b"x,y\n1,2\n")])
    assert place.fake.attached(first) == []
    assert place.fake.attached(last) == [("chart.png", PNG), ("data.csv", b"x,y\n1,2\n")]
    assert last.content == "b" * 1500  # the answer's text stays as it is
    assert [m.id for m in place.fake.bot_messages(place.channel)] == [first.id, last.id]
    # Through the metered, budgeted REST client like every other call.
    assert (calls(EDIT) - edits, calls(FETCH) - fetches) == (2, 2)


async def test_too_many_files_attach_what_fits_and_name_the_rest(place: Place) -> None:
    reply = place.reply()
    await reply.start()
    await reply.finish("here are your files")
    files = [OutFile(f"f{n}.txt", "text/plain", f"file {n}".encode()) for n in range(12)]
    await reply.attach(files)
    answer, note = place.fake.bot_messages(place.channel)
    assert [name for name, _ in place.fake.attached(answer)] == [f"f{n}.txt" for n in range(10)]
    assert note.content == "⚠️ 2 files could not be attached (Discord's limits): f10.txt, f11.txt"


async def test_files_over_the_size_limit_are_left_out_with_a_note(place: Place) -> None:
    fake = place.fake
    guild = fake.guild_of(place.channel)
    assert guild is not None
    reply = place.reply()
    await reply.start()
    await reply.finish("two pictures")
    huge = OutFile("huge.png", "image/png", bytes(DEFAULT_FILE_SIZE_LIMIT_BYTES + 1))
    # Over the limit the bot knows of: never sent. Over a lower one Discord applies: a 413,
    # and the file goes again without the last one.
    fake.set_attachment_size_limit(guild, len(PNG) + 10)
    await reply.attach([OutFile("small.png", "image/png", PNG), huge, OutFile("b.png", "", PNG)])
    answer, note = fake.bot_messages(place.channel)
    assert fake.attached(answer) == [("small.png", PNG)]
    assert answer.content == "two pictures"
    assert note.content == "⚠️ 2 files could not be attached (Discord's limits): b.png, huge.png"
    refused = [c for c in fake.calls if c.key == EDIT and len(c.files) == 2]
    assert len(refused) == 1  # small.png and b.png, refused with 40005; huge.png never sent


async def test_attach_to_a_deleted_answer_is_a_platform_failure(place: Place) -> None:
    reply = place.reply()
    await reply.start()
    await reply.finish("soon gone")
    (answer,) = place.fake.bot_messages(place.channel)
    place.fake.delete(answer.id)
    with pytest.raises(PlatformFailed):
        await reply.attach([OutFile("chart.png", "image/png", PNG)])
    assert place.fake.bot_messages(place.channel) == []  # nothing posted instead


async def test_the_adapters_reply_attaches_in_the_questions_thread(
    world: World, adapter: DiscordAdapter
) -> None:
    fake = world.fake
    fake.user_says(world.general, world.ada, f"{MENTION} draw a chart")
    event = await adapter.prepare(await next_event(world, 1))  # opens the thread

    async def save(ids: Sequence[str]) -> None:
        pass

    reply = adapter.reply(event, (), save)
    await reply.start()
    await reply.finish("Here it is.")
    await reply.attach([OutFile("chart.png", "image/png", PNG, title="a chart")])
    (answer,) = fake.bot_messages(event.thread.channel)
    assert (answer.content, fake.attached(answer)) == ("Here it is.", [("chart.png", PNG)])
    assert answer.attachments[0]["description"] == "a chart"  # the file's title as alt text
