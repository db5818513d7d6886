"""The adapter under test, started against the world each test module sets up
(its ``world`` fixture: the local Discord server and a core stand-in); and ``place``,
a channel of the local Discord with a logged-in discord.py client, for the reply and
the client's REST wrappers on their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
import pytest

from adapters.discord.app import DiscordAdapter, intents, make_client
from adapters.discord.reply import DiscordChannel, DiscordReply
from tests.adapters.discord.discord_world import World
from tests.fakes.discord_server import FakeDiscord, point_discord_py_at


@pytest.fixture
async def adapter(world: World) -> AsyncIterator[DiscordAdapter]:
    client = make_client(intents(), guild_ready_timeout=0.05)
    bot = DiscordAdapter(world.core, world.settings, places=world.core, client=client)
    await bot.start()
    try:
        yield bot
    finally:
        await bot.close()


@dataclass
class Place:
    fake: FakeDiscord
    client: discord.Client
    channel: str

    def reply(self) -> DiscordReply:
        target = self.client.get_partial_messageable(int(self.channel))
        return DiscordReply(DiscordChannel(target), typing_renew=60, final_retry_delays=())

    def shown(self) -> list[str]:
        return [m.content for m in self.fake.bot_messages(self.channel)]


@pytest.fixture
async def place() -> AsyncIterator[Place]:
    async with FakeDiscord() as fake:
        channel = fake.add_channel(fake.add_guild("Lab"), "general")
        with point_discord_py_at(fake):
            client = discord.Client(intents=discord.Intents.none())
            await client.login("fake-bot-token")
            try:
                yield Place(fake, client, channel)
            finally:
                await client.close()
