"""The Discord adapter (discord.py): mentions open threads that become Open WebUI chats.

* ``settings``: ``DISCORD_*`` settings.
* ``inbound``: which messages get an answer, in which conversation (pure).
* ``text``: mentions made readable, thread names (pure).
* ``invite``: the invite URL, its permission integer, the intent check (pure).
* ``reply``: one answer in one channel, as a small state machine.
* ``app``: the ``bridge.reply.Platform``: gateway client, ``/new``, look-ups.
"""
