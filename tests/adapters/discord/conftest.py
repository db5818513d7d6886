"""The adapter under test, started against the world each test module sets up
(its ``world`` fixture: the local Discord server and a core stand-in)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.discord.app import DiscordAdapter, intents, make_client
from tests.adapters.discord.discord_world import World


@pytest.fixture
async def adapter(world: World) -> AsyncIterator[DiscordAdapter]:
    client = make_client(intents(), guild_ready_timeout=0.05)
    bot = DiscordAdapter(world.core, world.settings, places=world.core, client=client)
    await bot.start()
    try:
        yield bot
    finally:
        await bot.close()
