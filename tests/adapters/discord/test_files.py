"""Files on Discord, with real discord.py against the local Discord: a question's
attachments reach the core as ``FileRef``s whose bytes the adapter streams from the
CDN, and an answer's files land as attachments of its last message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.discord.app import DiscordAdapter
from adapters.discord.files import GONE, link_expired
from bridge.errors import FileUnavailable
from bridge.events import FileRef
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
