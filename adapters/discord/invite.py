"""What a server admin needs to add the bot: the invite URL and the intent it needs. Pure."""

from __future__ import annotations

import discord

SCOPES = ("bot", "applications.commands")
# View channels, send messages, send messages in threads, create public threads,
# read message history, attach files (an answer's images and files):
# 309237746688 (deploy/discord/README.md states the number).
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
    attach_files=True,
)
INTENT_FIX = (
    "enable it in the Discord Developer Portal → your application → Bot → "
    "Privileged Gateway Intents → Message Content Intent"
)
INTENT_MISSING = f"the Message Content intent is not enabled for this bot; {INTENT_FIX}"


def invite_url(application_id: int | str) -> str:
    scopes = "%20".join(SCOPES)
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope={scopes}&permissions={PERMISSIONS.value}"
    )


def message_content_granted(flags: discord.ApplicationFlags) -> bool:
    """Whether the app may read message content (verified apps: the full intent; others
    under 100 servers: the "limited" one the portal toggle grants)."""
    return flags.gateway_message_content or flags.gateway_message_content_limited
