"""The Discord adapter (discord.py): mentions open threads that become Open WebUI chats.

* ``settings``: ``DISCORD_*`` settings.
* ``inbound``: which messages get an answer, in which conversation (pure).
* ``text``: mentions made readable, thread names (pure).
* ``invite``: the invite URL, its permission integer, the intent check (pure).
* ``places``: a conversation's place name and the link to its thread (pure).
* ``reactions``: what a reaction on an answer asks for (pure).
* ``facts``: who asks (or reacts) and where, for the access policy.
* ``names``: the names people see (authors, mentions, server nicknames).
* ``threads``: the thread a mention opens (or the channel, when it cannot be
  opened), and the thread so far when the bot joins late.
* ``reply``: one answer in one channel, as a small state machine.
* ``steering``: reactions on answers (rate, stop, regenerate) and ``/stop``.
* ``commands``: the ``/new`` and ``/stop`` slash commands.
* ``gateway``: the client, its intents, start-up until READY, start-up errors.
* ``app``: the ``bridge.reply.Platform``: messages in, turns prepared, replies out.
"""
