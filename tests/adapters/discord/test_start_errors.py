"""Why the client could not start, as the one line the CLI prints."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
import pytest

from adapters.discord.gateway import (
    SHARD_REFUSED,
    SHARDING_REQUIRED,
    TOKEN_REJECTED,
    start_error,
)
from adapters.discord.invite import INTENT_MISSING
from adapters.discord.settings import DiscordSettings

SETTINGS = DiscordSettings(bot_token="secret-token", gateway_url="ws://gw.example/gateway")


def closed(code: int) -> discord.ConnectionClosed:
    socket: Any = SimpleNamespace(close_code=code)
    return discord.ConnectionClosed(socket, shard_id=None, code=code)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (discord.PrivilegedIntentsRequired(None), INTENT_MISSING),
        (closed(4014), INTENT_MISSING),
        (closed(4013), INTENT_MISSING),
        (closed(4004), TOKEN_REJECTED),
        (discord.LoginFailure("Improper token has been passed."), TOKEN_REJECTED),
        (closed(4012), "Discord closed the gateway at start-up (code 4012)"),
        (closed(4010), SHARD_REFUSED),
        (closed(4011), SHARDING_REQUIRED),
        (aiohttp.ClientConnectionError(), "cannot reach Discord at ws://gw.example/gateway"),
    ],
)
def test_start_error(error: BaseException, line: str) -> None:
    message = str(start_error(error, SETTINGS))
    assert message.startswith(line)
    assert "\n" not in message and "secret-token" not in message
