"""The slash commands: ``/new`` (a new conversation in this DM) and ``/stop`` (the
answer being written here). Both answer privately: acknowledged at once, then
answered, so a slow look-up never makes Discord say the command failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from adapters.discord import inbound
from adapters.discord.facts import AskerFacts
from adapters.discord.steering import Steering
from bridge.events import ThreadKey
from bridge.policy import Refusal, judge
from bridge.reply import Intake

log = logging.getLogger(__name__)

NEW_DONE = "Done: your next message starts a new conversation."
NEW_IN_SERVER = (
    "In a server, mention me in a channel: each mention opens its own thread and conversation."
)
# /new answers for those who may not use the DM (an interaction must be answered).
NEW_DMS_OFF = "I don't answer direct messages, so there is no conversation to start over."
NEW_REFUSED = "Sorry, you don't have access to this assistant."
NEW_UNVERIFIED = "I couldn't confirm your access just now. Please try again in a minute."


class Commands:
    """``/new`` and ``/stop`` on ``tree``. ``order`` is the lock questions are queued
    under: ``/new`` takes its place between the questions before and after it."""

    def __init__(
        self,
        tree: app_commands.CommandTree[discord.Client],
        bridge: Intake,
        facts: AskerFacts,
        steering: Steering,
        order: asyncio.Lock,
    ) -> None:
        self._bridge = bridge
        self._facts = facts
        self._order = order

        @app_commands.command(name="new", description="Start a new conversation in this DM")
        @app_commands.allowed_contexts(guilds=False, dms=True, private_channels=False)
        async def new(interaction: discord.Interaction[discord.Client]) -> None:
            await answer_privately(interaction, lambda: self._new_conversation(interaction))

        @app_commands.command(name="stop", description="Stop the answer being written here")
        @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
        async def stop(interaction: discord.Interaction[discord.Client]) -> None:
            await answer_privately(interaction, lambda: steering.stop_command(interaction))

        tree.add_command(new)
        tree.add_command(stop)

    async def _new_conversation(self, interaction: discord.Interaction[discord.Client]) -> str:
        """Start a new conversation in the DM where ``/new`` was used; what to tell."""
        if interaction.guild_id is not None or interaction.channel_id is None:
            return NEW_IN_SERVER
        refusal = await self._new_refusal(str(interaction.user.id))
        if refusal is not None:
            return refusal
        channel = str(interaction.channel_id)
        async with self._order:  # between the questions before it and after it
            await self._bridge.start_over(ThreadKey(inbound.PLATFORM, "", channel, channel))
        return NEW_DONE

    async def _new_refusal(self, user: str) -> str | None:
        """Why ``user`` may not start over in a DM (the DM would not answer them)."""
        try:
            asker = await self._facts.of_dm_user(user)
        except Exception:
            log.exception("cannot check /new of user %s", user)
            return NEW_UNVERIFIED
        if asker is None:
            return NEW_UNVERIFIED
        refusal = judge(self._bridge.access, asker)
        if refusal is None:
            return None
        if refusal is Refusal.DIRECT:
            return NEW_DMS_OFF
        return NEW_UNVERIFIED if refusal is Refusal.UNVERIFIED else NEW_REFUSED


async def answer_privately(
    interaction: discord.Interaction[discord.Client], said: Callable[[], Awaitable[str]]
) -> None:
    """Answer a command only its user sees. Discord drops an interaction not answered
    within 3 s, and look-ups may take longer: acknowledge first, then say it."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    await interaction.edit_original_response(content=await said())
