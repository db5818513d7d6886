"""The bot's connection to Discord: where discord.py points, the client and its
intents, start-up until READY, and one line for why start-up failed.

``connect`` returns the gateway task once READY arrived (discord.py keeps the
gateway in the background, reconnecting and resuming); ``disconnect`` ends it but
leaves REST open for the answers still being delivered.

Sharded (``DISCORD_SHARD_COUNT``): discord.py's ``AutoShardedClient`` holds one
connection per shard of ``DISCORD_SHARD_IDS``; Discord sends each connection the
events of its guilds (``(guild_id >> 22) % shard_count``), DMs to shard 0 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.invite import INTENT_FIX, INTENT_MISSING
from adapters.discord.settings import DiscordSettings
from bridge.config import ConfigError

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds from login to READY before start-up gives up
# discord.py waits this long before each IDENTIFY after a process's first shard
# (Discord's session start limit at max_concurrency 1): start-up waits as much more.
IDENTIFY_SPACING = 5.0
SHARD_REFUSED = (
    "Discord refused the shard (close code 4010): check DISCORD_SHARD_COUNT and DISCORD_SHARD_IDS"
)
SHARDING_REQUIRED = (
    "Discord requires sharding for this bot (close code 4011): set DISCORD_SHARD_COUNT "
    "(owui-bridge check prints the count Discord recommends)"
)
TOKEN_REJECTED = "DISCORD_BOT_TOKEN was rejected by Discord; copy it again (Developer Portal → Bot)"


def point_at(settings: DiscordSettings) -> None:
    """Aim discord.py at the configured REST base and gateway (both process-wide in
    discord.py: one Discord configuration per process)."""
    Route.BASE = settings.api_url
    if settings.gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def intents() -> discord.Intents:
    """Servers, their messages, DMs, message content (privileged), and reactions in
    servers and DMs (👍/👎, ⏹, 🔁 on answers). No members: a message carries its
    author's nickname and global name, an added reaction its member."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    wanted.guild_reactions = True
    wanted.dm_reactions = True
    return wanted


def make_client(
    intents: discord.Intents,
    *,
    guild_ready_timeout: float = 2.0,
    shard_count: int | None = None,
    shard_ids: list[int] | None = None,
) -> discord.Client:
    """The bot's client. ``guild_ready_timeout``: how long READY waits for servers to
    arrive (discord.py's default; tests shorten it). With ``shard_count``, an
    ``AutoShardedClient`` holding ``shard_ids`` (all shards when None)."""
    # The bot never joins voice: discord.py's start-up warnings about voice libraries
    # would only worry an operator.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    if shard_count is not None:
        sharding: dict[str, Any] = {"shard_count": shard_count}
        if shard_ids is not None:
            sharding["shard_ids"] = list(shard_ids)
        return discord.AutoShardedClient(
            intents=intents, **sharding, **_options(guild_ready_timeout)
        )
    return discord.Client(intents=intents, **_options(guild_ready_timeout))


def _options(guild_ready_timeout: float) -> dict[str, Any]:
    return dict(
        guild_ready_timeout=guild_ready_timeout,
        allowed_mentions=discord.AllowedMentions.none(),
        max_messages=None,  # edits and deletions are not followed: no message cache
        chunk_guilds_at_startup=False,
        member_cache_flags=discord.MemberCacheFlags.none(),
        # No max_ratelimit_timeout: discord.py waits out every bucket and 429 rather than
        # raising RateLimited; a final text waits in the budget, and beyond discord.py's
        # five tries the reply goes on (adapters.discord.reply, FINAL_PATIENCE).
        max_ratelimit_timeout=None,
    )


def partial_channel(
    client: discord.Client, channel_id: str, guild_id: str
) -> discord.PartialMessageable:
    """A channel to call REST on by id (no fetch, nothing cached needed)."""
    return client.get_partial_messageable(
        int(channel_id), guild_id=int(guild_id) if guild_id else None
    )


def start_error(exc: BaseException, settings: DiscordSettings) -> ConfigError:
    """One line for why the client could not start (never a close code alone)."""
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return ConfigError(INTENT_MISSING)
    if isinstance(exc, discord.ConnectionClosed):
        if exc.code == 4004:
            return ConfigError(TOKEN_REJECTED)
        if exc.code in (4013, 4014):
            return ConfigError(INTENT_MISSING)
        if exc.code == 4010:
            return ConfigError(SHARD_REFUSED)
        if exc.code == 4011:
            return ConfigError(SHARDING_REQUIRED)
        return ConfigError(f"Discord closed the gateway at start-up (code {exc.code})")
    if isinstance(exc, discord.LoginFailure):
        return ConfigError(TOKEN_REJECTED)
    if isinstance(exc, discord.HTTPException):
        return ConfigError(f"Discord at {settings.api_url} answered {exc.status}: {exc.text}")
    if isinstance(exc, discord.GatewayNotFound | aiohttp.ClientError | OSError | TimeoutError):
        where = settings.gateway_url or settings.api_url
        return ConfigError(f"cannot reach Discord at {where}: {type(exc).__name__}")
    return ConfigError(f"cannot connect to Discord: {type(exc).__name__}: {exc}")


async def connect(client: discord.Client, settings: DiscordSettings) -> asyncio.Task[None]:
    """Connect the gateway; returns its task once READY arrived. Raises what stopped
    it first, or ``ConfigError`` when READY does not come within ``START_TIMEOUT``."""
    gateway = asyncio.create_task(client.connect(reconnect=True))
    ready = asyncio.create_task(client.wait_until_ready())
    timeout = START_TIMEOUT + IDENTIFY_SPACING * max(len(held_shards(client)) - 1, 0)
    done, _ = await asyncio.wait(
        {gateway, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    if ready in done:
        gateway.add_done_callback(_gateway_ended)
        return gateway
    ready.cancel()
    if gateway in done:
        error = gateway.exception()
        raise error if error is not None else ConfigError("Discord closed the gateway")
    gateway.cancel()
    where = settings.gateway_url or "Discord's gateway"
    raise ConfigError(f"no READY from {where} within {timeout:.0f} s")


async def disconnect(client: discord.Client, gateway: asyncio.Task[None] | None) -> None:
    """End the gateway (no new events); REST stays open."""
    if gateway is not None:
        gateway.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await gateway
    if isinstance(client, discord.AutoShardedClient):
        for shard in client.shards.values():
            with contextlib.suppress(Exception):
                await shard.disconnect()
        return
    ws = client.ws
    if ws is not None and ws.open:
        with contextlib.suppress(Exception):
            await ws.close(code=1000)


def held_shards(client: discord.Client) -> list[int]:
    """The shards ``client`` holds ([] when not sharded)."""
    if not isinstance(client, discord.AutoShardedClient):
        return []
    if client.shard_ids is not None:
        return list(client.shard_ids)
    return list(range(client.shard_count or 0))


def shard_connected(client: discord.Client, shard_id: int) -> bool:
    """That shard's connection is open (a shard not launched yet is not)."""
    if not isinstance(client, discord.AutoShardedClient):
        return False
    shard = client.get_shard(shard_id)
    return shard is not None and not shard.is_closed()


def connected(client: discord.Client) -> bool:
    """The gateway is connected and READY: every shard the client holds, if sharded."""
    if not client.is_ready() or client.is_closed():
        return False
    if isinstance(client, discord.AutoShardedClient):
        return all(shard_connected(client, shard) for shard in held_shards(client))
    ws = client.ws
    return ws is not None and ws.open


def _gateway_ended(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        fix = f" ({INTENT_FIX})" if isinstance(error, discord.PrivilegedIntentsRequired) else ""
        log.error("the Discord gateway stopped: %s%s", type(error).__name__, fix)
