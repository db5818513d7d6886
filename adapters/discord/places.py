"""Where a Discord conversation lives, as people know it: the place's name (for
the Open WebUI folder and tags) and the link that opens the thread. Pure."""

from __future__ import annotations

JUMP = "https://discord.com/channels"
DM_PLACE = "DMs"
SEPARATOR = "\u203a"  # a single right-pointing angle quote between server and channel


def place_name(guild_name: str, channel_name: str) -> str:
    """``Lab \u203a #help``: the server and the channel a conversation follows."""
    return f"{guild_name} {SEPARATOR} #{channel_name}"


def jump_url(guild: str, channel: str, message: str = "") -> str:
    """The URL Discord opens a channel (or thread, or DM) at; with ``message``, that
    message. A DM has no server: ``@me``."""
    url = f"{JUMP}/{guild or '@me'}/{channel}"
    return f"{url}/{message}" if message else url
