"""FakeDiscord driven by the real discord.py client (REST, gateway, app commands)."""

from __future__ import annotations

import asyncio
import io
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import discord
import httpx
import pytest
from discord import app_commands

from tests.fakes.discord_cdn import EXPIRED_TEXT, FakeFile
from tests.fakes.discord_server import (
    APP_ID,
    BOT_USER_ID,
    GATEWAY_MESSAGE_CONTENT_LIMITED,
    GLOBAL_LIMIT,
    GUILD_FORUM,
    MESSAGE_CONTENT,
    NONCE_WINDOW,
    ROUTE_LIMIT,
    ROUTE_WINDOW,
    FakeDiscord,
    point_discord_py_at,
)

TOKEN = "fake-bot-token"
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"


@dataclass
class World:
    fake: FakeDiscord
    guild: str
    general: str
    forum: str
    ada: str
    role: str


@dataclass
class Bot:
    client: discord.Client
    task: asyncio.Task[None]
    messages: list[discord.Message] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    resumed: int = 0


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Lab")
        general = fake.add_channel(guild, "general")
        forum = fake.add_channel(guild, "help", type=GUILD_FORUM)
        ada = fake.add_user(name="ada", global_name="Ada Lovelace")
        role = fake.add_role(guild, name="mathematicians")
        fake.add_member(guild, ada, nick="Ada L.", roles=[role])
        with point_discord_py_at(fake):
            yield World(fake, guild, general, forum, ada, role)


def _intents(*, content: bool = True) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = content
    return intents


async def _start(client: discord.Client) -> Bot:
    bot = Bot(client, asyncio.create_task(client.start(TOKEN)))

    @client.event
    async def on_ready() -> None:
        bot.ready.set()

    @client.event
    async def on_message(message: discord.Message) -> None:
        bot.messages.append(message)

    @client.event
    async def on_resumed() -> None:
        bot.resumed += 1

    ready = asyncio.create_task(bot.ready.wait())
    done, _ = await asyncio.wait({ready, bot.task}, timeout=5, return_when="FIRST_COMPLETED")
    if ready in done:
        return bot
    # A client left running would reconnect to discord.gg once the patch is undone.
    ready.cancel()
    await client.close()
    if bot.task.done():
        bot.task.result()  # raises what start() raised
    bot.task.cancel()
    raise AssertionError("on_ready never fired")


@pytest.fixture
async def bot(world: World) -> AsyncIterator[Bot]:
    client = discord.Client(intents=_intents(), guild_ready_timeout=0.05)
    running = await _start(client)
    yield running
    await client.close()
    await asyncio.wait_for(running.task, 5)


async def _wait_messages(fake: FakeDiscord, bot: Bot, count: int) -> None:
    await fake.wait_for(lambda: len(bot.messages) >= count, what=f"{count} on_message call(s)")


# -- login, READY, GUILD_CREATE, MESSAGE_CREATE ------------------------------------------


async def test_ready_fills_the_cache(world: World) -> None:
    intents = _intents()
    intents.members = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)
    bot = await _start(client)
    try:
        _check_cache(world, client, intents)
    finally:
        await client.close()
        await bot.task


def _check_cache(world: World, client: discord.Client, intents: discord.Intents) -> None:
    assert client.user is not None and str(client.user.id) == BOT_USER_ID
    assert str(client.application_id) == APP_ID
    assert client.application_flags.value & GATEWAY_MESSAGE_CONTENT_LIMITED
    assert client.application_flags.gateway_message_content_limited
    guild = client.get_guild(int(world.guild))
    assert guild is not None and guild.name == "Lab"
    general = guild.get_channel(int(world.general))
    assert isinstance(general, discord.TextChannel) and general.name == "general"
    assert isinstance(guild.get_channel(int(world.forum)), discord.ForumChannel)
    ada = guild.get_member(int(world.ada))
    assert ada is not None and ada.display_name == "Ada L." and ada.global_name == "Ada Lovelace"
    assert [r.name for r in ada.roles] == ["@everyone", "mathematicians"]
    me = guild.me
    assert me is not None and me.bot
    perms = general.permissions_for(me)
    assert perms.create_public_threads and perms.send_messages_in_threads
    # What discord.py asked for: the identify carried the intents, the socket compression.
    assert world.fake.identifies[0]["intents"] == intents.value
    assert world.fake.gateway_connections[0].query == {
        "v": "10",
        "encoding": "json",
        "compress": "zlib-stream",
    }
    assert [c.key for c in world.fake.calls[:2]] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
    ]


async def test_message_create_reaches_on_message(world: World, bot: Bot) -> None:
    fake = world.fake
    sent = fake.user_says(
        world.general, world.ada, f"<@{BOT_USER_ID}> what is 2+2, <@&{world.role}>?"
    )
    await _wait_messages(fake, bot, 1)
    message = bot.messages[0]
    assert message.id == int(sent.id)
    assert message.content == f"<@{BOT_USER_ID}> what is 2+2, <@&{world.role}>?"
    assert isinstance(message.author, discord.Member)
    assert message.author.display_name == "Ada L."
    assert bot.client.user in message.mentions
    # Without the members intent only the bot is cached: the author's member comes with the
    # message.
    assert message.guild is not None and message.guild.get_member(int(world.ada)) is None
    assert [r.id for r in message.role_mentions] == [int(world.role)]
    assert isinstance(message.channel, discord.TextChannel)
    assert message.type is discord.MessageType.default and message.webhook_id is None

    dm = fake.add_dm(world.ada)
    fake.user_says(dm, world.ada, "hi in private")
    webhook = fake.user_says(world.general, world.ada, "from a webhook", webhook=True)
    await _wait_messages(fake, bot, 3)
    assert isinstance(bot.messages[1].channel, discord.DMChannel)
    assert bot.messages[1].content == "hi in private" and bot.messages[1].guild is None
    assert bot.messages[2].webhook_id == int(str(webhook.webhook_id))


async def test_content_is_withheld_without_the_intent(world: World) -> None:
    fake = world.fake
    client = discord.Client(intents=_intents(content=False), guild_ready_timeout=0.05)
    bot = await _start(client)
    try:
        fake.user_says(world.general, world.ada, "no mention here")
        fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> mentioned")
        fake.user_says(fake.add_dm(world.ada), world.ada, "a DM")
        await _wait_messages(fake, bot, 3)
        assert [m.content for m in bot.messages] == ["", f"<@{BOT_USER_ID}> mentioned", "a DM"]
    finally:
        await client.close()
        await bot.task


async def test_roles_and_files_come_with_the_message(world: World, bot: Bot) -> None:
    fake = world.fake
    staff = fake.add_role(world.guild, name="staff")  # after READY: GUILD_ROLE_CREATE
    fake.set_roles(world.guild, world.ada, [world.role, staff])
    fake.user_says(world.general, world.ada, "with two files", attachments=2)
    await _wait_messages(fake, bot, 1)
    message = bot.messages[0]
    assert isinstance(message.author, discord.Member)
    assert {r.name for r in message.author.roles} == {"@everyone", "mathematicians", "staff"}
    assert [a.filename for a in message.attachments] == ["file1.txt", "file2.txt"]
    fake.message_members = False  # a message without its author's member object
    fake.user_says(world.general, world.ada, "bare")
    await _wait_messages(fake, bot, 2)
    assert not isinstance(bot.messages[1].author, discord.Member)


async def test_fetch_member_and_unknown_member(world: World, bot: Bot) -> None:
    guild = bot.client.get_guild(int(world.guild))
    assert guild is not None
    member = await guild.fetch_member(int(world.ada))
    assert [r.name for r in member.roles] == ["@everyone", "mathematicians"]
    stranger = world.fake.add_user(name="stranger")
    with pytest.raises(discord.NotFound) as missing:
        await guild.fetch_member(int(stranger))
    assert missing.value.code == 10007  # Unknown Member
    world.fake.remove_member(world.guild, world.ada)
    with pytest.raises(discord.NotFound):
        await guild.fetch_member(int(world.ada))


async def test_replies_are_recorded_with_their_reference(world: World, bot: Bot) -> None:
    fake = world.fake
    asked = fake.user_says(world.general, world.ada, "hello")
    await _wait_messages(fake, bot, 1)
    await bot.messages[0].reply("hi back", mention_author=False)
    await bot.client.get_partial_messageable(int(world.general)).send("not a reply")
    [reply] = fake.replies_to(asked.id)
    assert reply.content == "hi back" and reply.type == 19
    assert [m.content for m in fake.bot_messages(world.general)] == ["hi back", "not a reply"]


# -- REST: send, edit, threads, typing, history ---------------------------------------------


async def test_send_edit_thread_typing_and_history(world: World, bot: Bot) -> None:
    fake = world.fake
    question = fake.user_says(world.general, world.ada, f"<@{BOT_USER_ID}> tell me about @everyone")
    await _wait_messages(fake, bot, 1)
    asked = bot.messages[0]

    thread = await asked.create_thread(name="tell me about everyone")
    assert thread.id == asked.id and thread.parent_id == int(world.general)
    assert fake.message(question.id) is not None
    assert fake.threads(world.general)[0]["name"] == "tell me about everyone"
    # THREAD_CREATE reached the cache.
    await fake.wait_for(lambda: bot.client.get_channel(thread.id) is not None)

    async with thread.typing():
        pass
    none = discord.AllowedMentions.none()
    answer = await thread.send("Thinking about @everyone", allowed_mentions=none)
    await answer.edit(content="Everyone is here.", allowed_mentions=none)
    second = await thread.send(f"<@{world.ada}> ping!")  # no allowed_mentions: pings Ada

    assert len(fake.typing_in(thread.id)) == 1
    view = fake.channel_view(thread.id)
    assert [(m.content, m.by_bot) for m in view] == [
        ("Everyone is here.", True),
        (f"<@{world.ada}> ping!", True),
    ]
    assert view[0].versions == ["Thinking about @everyone", "Everyone is here."]
    assert view[0].allowed_mentions == [none.to_dict(), none.to_dict()]
    assert fake.pings(thread.id) == [(view[1], f"<@{world.ada}>")]
    assert [m.id for m in fake.bot_messages(thread.id)] == [str(answer.id), str(second.id)]
    assert int(question.id) < answer.id < second.id  # snowflakes grow

    history = [m async for m in thread.history(limit=10)]
    assert [m.id for m in history] == [second.id, answer.id]  # newest first
    oldest_first = [m.id async for m in thread.history(limit=10, oldest_first=True)]
    assert oldest_first == [answer.id, second.id]
    fetched = await thread.fetch_message(answer.id)
    assert fetched.content == "Everyone is here." and fetched.edited_at is not None
    await second.delete()
    assert [m.id for m in fake.bot_messages(thread.id)] == [str(answer.id)]

    calls = fake.calls_of("PATCH", "/channels/{channel_id}/messages/{message_id}")
    assert len(calls) == 1 and calls[0].body["content"] == "Everyone is here."
    assert fake.calls_of("POST", f"/channels/{thread.id}/typing")


async def test_discord_refusals(world: World, bot: Bot) -> None:
    fake = world.fake
    fake.user_says(world.general, world.ada, "hello")
    await _wait_messages(fake, bot, 1)
    message = bot.messages[0]
    channel = message.channel
    assert isinstance(channel, discord.TextChannel)

    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert (too_long.value.status, too_long.value.code) == (400, 50035)
    await channel.send("x" * 2000)

    with pytest.raises(discord.HTTPException) as bad_name:
        await message.create_thread(name="n" * 101)
    assert bad_name.value.code == 50035
    await message.create_thread(name="first")
    with pytest.raises(discord.HTTPException) as twice:
        await message.create_thread(name="second")
    assert twice.value.code == 160004

    with pytest.raises(discord.Forbidden) as not_ours:
        await message.edit(content="mine now")
    assert not_ours.value.code == 50005

    fake.fail_next("POST /channels/{channel_id}/messages", 403, 50013, "Missing Permissions")
    with pytest.raises(discord.Forbidden) as forbidden:
        await channel.send("nope")
    assert forbidden.value.code == 50013


async def test_429_on_an_edit_is_waited_out(world: World, bot: Bot) -> None:
    fake = world.fake
    channel = bot.client.get_channel(int(world.general))
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("draft", allowed_mentions=discord.AllowedMentions.none())
    fake.rate_limit_next(EDIT, retry_after=0.5)
    started = time.monotonic()
    await sent.edit(content="final")
    assert time.monotonic() - started >= 0.5
    edits = fake.calls_of("PATCH", "/channels/*/messages/*")
    assert len(edits) == 2 and fake.rate_limited == [edits[0]]
    assert fake.channel_view(world.general)[-1].content == "final"


async def test_429_headers_are_what_discord_py_needs(world: World) -> None:
    fake = world.fake
    fake.rate_limit_next("GET /gateway/bot", retry_after=2.5)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake.api_url}/gateway/bot", headers={"Authorization": "Bot x"}) as r,
    ):
        assert r.status == 429
        assert await r.json() == {
            "message": "You are being rate limited.",
            "retry_after": 2.5,
            "global": False,
        }
        assert r.headers["Via"] == "1.1 google" and r.headers["Retry-After"] == "3"
        assert r.headers["X-RateLimit-Remaining"] == "0"
        assert r.headers["X-RateLimit-Reset-After"] == "2.500"
        assert r.headers["X-RateLimit-Bucket"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake.api_url}/gateway/bot", headers={"Authorization": "Bot x"}) as r,
    ):
        body = await r.json()
        assert body["url"] == fake.gateway_url and body["shards"] == 1
        assert body["session_start_limit"]["max_concurrency"] == 1
        assert "X-RateLimit-Limit" in r.headers


# -- gateway: resume, replay, fatal closes ------------------------------------------------


async def test_reconnect_resumes_and_replays_missed_events(world: World, bot: Bot) -> None:
    fake = world.fake
    fake.user_says(world.general, world.ada, "one")
    await _wait_messages(fake, bot, 1)

    fake.reconnect()
    # Sent right behind op 7: the client closes before reading it, so only the resume's
    # replay of the session's buffer delivers it.
    fake.user_says(world.general, world.ada, "two")
    await fake.wait_for(lambda: bot.resumed == 1, what="RESUMED")
    await _wait_messages(fake, bot, 2)
    assert [m.content for m in bot.messages] == ["one", "two"]
    assert len(fake.identifies) == 1 and len(fake.resumes) == 1
    assert fake.resumes[0]["session_id"] == bot.client.ws.session_id

    fake.drop()
    fake.user_says(world.general, world.ada, "three")  # lost with the socket
    await fake.wait_for(lambda: bot.resumed == 2, what="second RESUMED")
    await _wait_messages(fake, bot, 3)
    assert [m.content for m in bot.messages] == ["one", "two", "three"]
    assert len(fake.identifies) == 1 and len(fake.gateway_connections) == 3


async def test_a_replayed_message_create_arrives_twice(world: World, bot: Bot) -> None:
    fake = world.fake
    fake.user_says(world.general, world.ada, "only once, please")
    await _wait_messages(fake, bot, 1)
    assert fake.replay_last(1) == 1
    await _wait_messages(fake, bot, 2)

    # And a resume that restarts one dispatch early delivers it again too.
    fake.resume_replays_delivered = 1
    fake.drop()
    await fake.wait_for(lambda: bot.resumed == 1, what="RESUMED")
    await _wait_messages(fake, bot, 3)
    assert [m.id for m in bot.messages] == [bot.messages[0].id] * 3


async def test_invalid_session_identifies_again(world: World, bot: Bot) -> None:
    fake = world.fake
    fake.invalidate_session()
    await fake.wait_for_session(2, timeout=10)
    fake.user_says(world.general, world.ada, "after the new session")
    await _wait_messages(fake, bot, 1)
    assert len(fake.identifies) == 2
    # Only the DEFAULT_GATEWAY patch keeps this reconnect away from discord.gg.
    assert len(fake.gateway_connections) == 2


async def test_message_content_intent_not_allowed(world: World) -> None:
    world.fake.message_content_allowed = False
    client = discord.Client(intents=_intents(), guild_ready_timeout=0.05)
    with pytest.raises(discord.errors.PrivilegedIntentsRequired):
        await _start(client)  # closes the client when start() fails
    assert not client.application_flags.gateway_message_content_limited
    assert world.fake.identifies[0]["intents"] & MESSAGE_CONTENT


async def test_plain_text_frames_when_compression_is_off(world: World) -> None:
    world.fake.zlib_stream = False
    client = discord.Client(intents=_intents(), guild_ready_timeout=0.05)
    bot = await _start(client)
    try:
        world.fake.user_says(world.general, world.ada, "plain")
        await _wait_messages(world.fake, bot, 1)
    finally:
        await client.close()
        await bot.task


async def test_raw_gateway_frames(world: World) -> None:
    """The handshake as a hand-written client sees it (zlib-stream framing included)."""
    fake = world.fake
    inflate = zlib.decompressobj()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json&compress=zlib-stream") as ws,
    ):

        async def receive() -> dict[str, object]:
            frame = await ws.receive_bytes(timeout=5)
            assert frame.endswith(b"\x00\x00\xff\xff")
            decoded: dict[str, object] = __import__("json").loads(inflate.decompress(frame))
            return decoded

        hello = await receive()
        assert hello == {"op": 10, "d": {"heartbeat_interval": 41_250}}
        await ws.send_json({"op": 1, "d": None})
        assert await receive() == {"op": 11}
        await ws.send_json(
            {"op": 2, "d": {"token": TOKEN, "intents": 1 | 1 << 9, "properties": {}}}
        )
        ready = await receive()
        assert (ready["op"], ready["s"], ready["t"]) == (0, 1, "READY")
        guild_create = await receive()
        assert (guild_create["s"], guild_create["t"]) == (2, "GUILD_CREATE")


# -- application commands and interactions -----------------------------------------------


async def test_slash_command_round_trip(world: World) -> None:
    fake = world.fake
    client = discord.Client(intents=_intents(), guild_ready_timeout=0.05)
    tree = app_commands.CommandTree(client)
    ran: list[discord.Interaction] = []

    @tree.command(name="new", description="Start a new chat")
    async def new(interaction: discord.Interaction) -> None:
        ran.append(interaction)
        await interaction.response.send_message("Started a new chat.", ephemeral=True)

    @tree.command(name="hello", description="Say hello")
    async def hello(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("Hello, everyone!")

    async def setup_hook() -> None:
        await tree.sync()

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    bot = await _start(client)
    try:
        assert [c["name"] for c in fake.commands] == ["new", "hello"]
        assert len(fake.command_overwrites) == 1
        assert fake.calls_of("PUT", "/applications/{application_id}/commands")

        fake.interaction(world.ada, "new", world.general)
        await fake.wait_for(lambda: len(fake.interaction_responses) == 1, what="/new response")
        assert ran[0].user.id == int(world.ada) and ran[0].command is not None
        response = fake.interaction_responses[0]
        assert response.type == 4 and response.data["content"] == "Started a new chat."
        # Ephemeral: only Ada sees it.
        assert fake.bot_messages(world.general) == []
        assert [m.content for m in fake.bot_messages(world.general, as_user=world.ada)] == [
            "Started a new chat."
        ]

        dm = fake.add_dm(world.ada)
        fake.interaction(world.ada, "hello", dm)
        await fake.wait_for(lambda: len(fake.interaction_responses) == 2, what="/hello response")
        assert [m.content for m in fake.channel_view(dm)] == ["Hello, everyone!"]
    finally:
        await client.close()
        await bot.task


async def test_forum_post_and_thread_history(world: World, bot: Bot) -> None:
    fake = world.fake
    thread_id, first = fake.forum_post(world.forum, world.ada, "How do I?", "Question body")
    assert first.id == thread_id
    fake.user_says(thread_id, world.ada, f"<@{BOT_USER_ID}> any idea?")
    await _wait_messages(fake, bot, 2)
    thread = bot.messages[1].channel
    assert isinstance(thread, discord.Thread) and thread.parent_id == int(world.forum)
    assert [m.content async for m in thread.history(oldest_first=True)] == [
        "Question body",
        f"<@{BOT_USER_ID}> any idea?",
    ]
    assert bot.messages[0].id == thread.id


async def test_hold_and_release_an_edit(world: World, bot: Bot) -> None:
    fake = world.fake
    channel = bot.client.get_channel(int(world.general))
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("draft")
    fake.hold(EDIT, when=lambda call: call.body.get("content") == "final")
    edit = asyncio.create_task(sent.edit(content="final"))
    await fake.wait_for(lambda: len(fake.held) == 1, what="the held edit")
    assert fake.channel_view(world.general)[-1].content == "draft"
    fake.release(EDIT)
    await edit
    assert fake.channel_view(world.general)[-1].versions == ["draft", "final"]
    assert fake.dropped == []


async def test_a_nonce_sent_again_returns_the_same_message() -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("G")
        channel = fake.add_channel(guild, "general")
        async with httpx.AsyncClient(base_url=fake.api_url) as http:
            headers = {"Authorization": "Bot fake-bot-token"}
            body = {"content": "part one", "nonce": "42.0", "enforce_nonce": True}
            first = (
                await http.post(f"/channels/{channel}/messages", json=body, headers=headers)
            ).json()
            again = (
                await http.post(f"/channels/{channel}/messages", json=body, headers=headers)
            ).json()
            plain = {"content": "part one", "nonce": "42.0"}
            third = (
                await http.post(f"/channels/{channel}/messages", json=plain, headers=headers)
            ).json()
        assert again["id"] == first["id"] != third["id"]  # only enforce_nonce deduplicates
        assert [m.content for m in fake.bot_messages(channel)] == ["part one", "part one"]


# -- reactions and renames ------------------------------------------------------------


async def test_reactions_reach_the_raw_reaction_events(world: World) -> None:
    fake = world.fake
    intents = _intents()
    intents.guild_reactions = intents.dm_reactions = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)
    seen: list[discord.RawReactionActionEvent] = []

    @client.event
    async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
        seen.append(payload)

    @client.event
    async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
        seen.append(payload)

    bot = await _start(client)
    try:
        channel = client.get_channel(int(world.general))
        assert isinstance(channel, discord.TextChannel)
        answer = await channel.send("an answer")
        fake.react(answer.id, world.ada, "👍")
        fake.react(answer.id, world.ada, "👍")  # already there: nothing happens
        fake.unreact(answer.id, world.ada, "👍")
        dm = fake.add_dm(world.ada)
        private = fake.user_says(dm, world.ada, "hi")
        fake.react(private.id, world.ada, "⏹️")
        await fake.wait_for(lambda: len(seen) == 3, what="three reaction events")

        added, removed, in_dm = seen
        assert added.event_type == "REACTION_ADD" and removed.event_type == "REACTION_REMOVE"
        assert (added.message_id, added.channel_id, added.user_id) == (
            answer.id,
            int(world.general),
            int(world.ada),
        )
        assert added.guild_id == int(world.guild) and added.emoji.name == "👍"
        assert added.member is not None and added.member.display_name == "Ada L."
        assert added.message_author_id == int(BOT_USER_ID)
        assert removed.member is None and removed.message_author_id is None
        assert in_dm.guild_id is None and in_dm.member is None and in_dm.emoji.name == "⏹️"
        assert [(r.added, r.emoji) for r in fake.reactions] == [
            (True, "👍"),
            (False, "👍"),
            (True, "⏹️"),
        ]
        # A fetched message shows the reactions it still has.
        fetched = await channel.fetch_message(answer.id)
        assert fetched.reactions == []
        fake.react(answer.id, world.ada, "🔁")
        fetched = await channel.fetch_message(answer.id)
        assert [(str(r.emoji), r.count, r.me) for r in fetched.reactions] == [("🔁", 1, False)]
    finally:
        await client.close()
        await bot.task


async def test_reactions_need_the_reactions_intents(world: World, bot: Bot) -> None:
    fake = world.fake
    seen: list[discord.RawReactionActionEvent] = []

    @bot.client.event
    async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
        seen.append(payload)

    said = fake.user_says(world.general, world.ada, "hi")
    fake.react(said.id, world.ada, "👍")
    fake.user_says(world.general, world.ada, "after")
    await _wait_messages(fake, bot, 2)  # what came before it has been delivered
    assert seen == [] and len(fake.reactions) == 1


async def test_renamed_channel_and_server_reach_the_cache(world: World, bot: Bot) -> None:
    fake = world.fake
    fake.rename_channel(world.general, "announcements")
    fake.rename_guild(world.guild, "Laboratory")
    client = bot.client

    def renamed() -> bool:
        channel, guild = client.get_channel(int(world.general)), client.get_guild(int(world.guild))
        return (
            isinstance(channel, discord.TextChannel)
            and channel.name == "announcements"
            and guild is not None
            and guild.name == "Laboratory"
        )

    await fake.wait_for(renamed, what="the new names in discord.py's cache")
    guild = client.get_guild(int(world.guild))
    assert guild is not None and guild.get_role(int(world.role)) is not None  # roles kept
    assert fake.channels[world.general]["name"] == "announcements"


HEADERS = {"Authorization": "Bot fake-bot-token"}


async def test_a_deleted_message_still_answers_its_nonce_for_a_few_minutes() -> None:
    async with FakeDiscord() as fake:
        channel = fake.add_channel(fake.add_guild("G"), "general")
        body = {"content": "part one", "nonce": "42.0", "enforce_nonce": True}
        async with httpx.AsyncClient(base_url=fake.api_url, headers=HEADERS) as http:
            first = (await http.post(f"/channels/{channel}/messages", json=body)).json()
            await http.delete(f"/channels/{channel}/messages/{first['id']}")
            again = (await http.post(f"/channels/{channel}/messages", json=body)).json()
            assert again["id"] == first["id"]  # swallowed: nothing new to see
            assert fake.bot_messages(channel) == []
            fake.age(first["id"], NONCE_WINDOW + 1)
            later = (await http.post(f"/channels/{channel}/messages", json=body)).json()
        assert later["id"] != first["id"]
        assert [m.content for m in fake.bot_messages(channel)] == ["part one"]


async def test_a_route_bucket_answers_429_once_spent_and_only_for_its_channel() -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("G")
        general, other = fake.add_channel(guild, "general"), fake.add_channel(guild, "other")
        async with httpx.AsyncClient(base_url=fake.api_url, headers=HEADERS) as http:
            answers = [
                await http.post(f"/channels/{general}/messages", json={"content": f"m{i}"})
                for i in range(ROUTE_LIMIT + 1)
            ]
            elsewhere = await http.post(f"/channels/{other}/messages", json={"content": "x"})
        *allowed, refused = answers
        assert [a.status_code for a in allowed] == [200] * ROUTE_LIMIT
        assert [a.headers["X-RateLimit-Remaining"] for a in allowed] == [
            str(n) for n in range(ROUTE_LIMIT - 1, -1, -1)
        ]
        assert allowed[0].headers["X-RateLimit-Limit"] == str(ROUTE_LIMIT)
        assert refused.status_code == 429
        body = refused.json()
        assert body["global"] is False and 0 < body["retry_after"] <= ROUTE_WINDOW
        assert refused.headers["X-RateLimit-Scope"] == "user"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert float(refused.headers["X-RateLimit-Reset-After"]) <= ROUTE_WINDOW
        assert elsewhere.status_code == 200  # another channel is another bucket
        assert len(fake.bot_messages(general)) == ROUTE_LIMIT  # the refused post made none


async def test_the_global_limit_answers_429_across_routes() -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("G")
        channels = [fake.add_channel(guild, f"c{i}") for i in range(GLOBAL_LIMIT + 1)]
        async with httpx.AsyncClient(base_url=fake.api_url, headers=HEADERS) as http:
            answers = [
                await http.post(f"/channels/{c}/typing") for c in channels
            ]  # one call per bucket: only the global limit can refuse
        assert [a.status_code for a in answers[:-1]] == [204] * GLOBAL_LIMIT
        last = answers[-1]
        assert last.status_code == 429 and last.json()["global"] is True
        assert last.headers["X-RateLimit-Global"] == "true"
        assert last.headers["X-RateLimit-Scope"] == "global"
        assert fake.rate_limited_globally == fake.rate_limited == [fake.calls[-1]]


async def test_discord_py_waits_out_the_buckets_by_itself(world: World, bot: Bot) -> None:
    channel = bot.client.get_partial_messageable(int(world.general))
    for i in range(ROUTE_LIMIT * 2):
        await channel.send(f"m{i}")
    assert [m.content for m in world.fake.bot_messages(world.general)] == [
        f"m{i}" for i in range(ROUTE_LIMIT * 2)
    ]


async def test_an_answer_over_2000_characters_is_refused(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.fake.api_url, headers=HEADERS) as http:
        fits = await http.post(f"/channels/{world.general}/messages", json={"content": "a" * 2000})
        over = await http.post(f"/channels/{world.general}/messages", json={"content": "a" * 2001})
        edit = await http.patch(
            f"/channels/{world.general}/messages/{fits.json()['id']}", json={"content": "b" * 2001}
        )
    assert fits.status_code == 200
    assert (over.status_code, over.json()["code"]) == (400, 50035)
    assert "content" in over.json()["errors"]
    assert (edit.status_code, edit.json()["code"]) == (400, 50035)


async def test_edits_of_a_message_over_an_hour_old_are_refused_with_30046(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.fake.api_url, headers=HEADERS) as http:
        posted = (
            await http.post(f"/channels/{world.general}/messages", json={"content": "old"})
        ).json()
        url = f"/channels/{world.general}/messages/{posted['id']}"
        assert (await http.patch(url, json={"content": "recent edit"})).status_code == 200
        world.fake.age(posted["id"], 3601)
        refused = await http.patch(url, json={"content": "too late"})
        deleted = await http.delete(url)
    assert (refused.status_code, refused.json()["code"]) == (400, 30046)
    assert deleted.status_code == 204  # deleting an old message is still allowed
    assert world.fake.message(posted["id"]).versions == ["old", "recent edit"]


async def test_a_cut_call_is_a_network_error_and_is_not_applied(world: World) -> None:
    world.fake.cut_next("POST /channels/{channel_id}/messages")
    async with httpx.AsyncClient(base_url=world.fake.api_url, headers=HEADERS) as http:
        with pytest.raises(httpx.TransportError):
            await http.post(f"/channels/{world.general}/messages", json={"content": "lost"})
        kept = await http.post(f"/channels/{world.general}/messages", json={"content": "kept"})
    assert kept.status_code == 200
    assert [m.content for m in world.fake.bot_messages(world.general)] == ["kept"]


# -- attachments: the CDN, uploads on create and edit -------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 800  # ~200 KB: several CDN chunks


async def test_attachments_are_served_by_signed_links_that_expire(world: World, bot: Bot) -> None:
    fake = world.fake
    said = fake.user_says(
        world.general, world.ada, "look", files=[FakeFile("shot.png", PNG, "image/png")]
    )
    await _wait_messages(fake, bot, 1)
    (attachment,) = bot.messages[0].attachments
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "shot.png",
        "image/png",
        len(PNG),
    )
    assert attachment.id == int(said.attachments[0]["id"])
    assert await attachment.read() == PNG  # discord.py's own CDN fetch
    async with httpx.AsyncClient() as http:
        assert (await http.get(attachment.proxy_url)).content == PNG
        forged = attachment.url.replace("hm=", "hm=0")
        assert (await http.get(forged)).status_code == 403
        fake.cdn.expire_links()
        expired = await http.get(attachment.url)
        assert (expired.status_code, expired.text) == (404, EXPIRED_TEXT)
        # Fetching the message again hands out a fresh link, as Discord does.
        fresh = await bot.messages[0].channel.fetch_message(int(said.id))
        assert (await http.get(fresh.attachments[0].url)).content == PNG
        fake.delete(said.id)
        assert (await http.get(fresh.attachments[0].url)).status_code == 404


async def test_files_uploaded_on_create_and_edit_as_discord_py_sends_them(
    world: World, bot: Bot
) -> None:
    fake = world.fake
    channel = bot.client.get_channel(int(world.general))
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("an answer", file=discord.File(io.BytesIO(PNG), "chart.png"))
    shown = fake.message(sent.id)
    assert shown is not None
    assert fake.attached(shown) == [("chart.png", PNG)]
    assert sent.attachments[0].content_type == "image/png"
    first = sent.attachments[0]
    notes = discord.File(io.BytesIO(b"notes"), "notes.txt")
    edited = await sent.edit(attachments=[*sent.attachments, notes])
    assert fake.attached(shown) == [("chart.png", PNG), ("notes.txt", b"notes")]
    assert shown.content == "an answer" and edited.attachments[0].id == first.id
    # Discord's limits: ten files a message, the guild's upload size.
    many = [discord.File(io.BytesIO(b"x"), f"f{n}.txt") for n in range(9)]
    with pytest.raises(discord.HTTPException) as too_many:
        await sent.edit(attachments=[*edited.attachments, *many])
    assert (too_many.value.status, too_many.value.code) == (400, 50035)
    fake.set_attachment_size_limit(world.guild, len(PNG) - 1)
    with pytest.raises(discord.HTTPException) as too_large:
        await channel.send(file=discord.File(io.BytesIO(PNG), "big.png"))
    assert (too_large.value.status, too_large.value.code) == (413, 40005)
    assert [m.id for m in fake.bot_messages(world.general)] == [str(sent.id)]
    assert len(fake.attached(shown)) == 2
    # An edit listing no attachments removes them all; their links stop working.
    await sent.edit(attachments=[])
    assert fake.attached(shown) == []
    async with httpx.AsyncClient() as http:
        assert (await http.get(first.url)).status_code == 404


# -- sharding ----------------------------------------------------------------------


async def test_gateway_bot_recommends_shards() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        fake.recommended_shards = 3
        fake.max_concurrency = 16
        async with session.get(
            f"{fake.api_url}/gateway/bot", headers={"Authorization": f"Bot {TOKEN}"}
        ) as response:
            body = await response.json()
    assert body["shards"] == 3
    assert body["session_start_limit"]["max_concurrency"] == 16
    assert body["session_start_limit"]["remaining"] == 1000


async def _sharded(shard: int, count: int) -> Bot:
    client = discord.AutoShardedClient(
        intents=_intents(), shard_count=count, shard_ids=[shard], guild_ready_timeout=0.05
    )
    return await _start(client)


async def test_each_shard_gets_its_own_guilds_and_dms_go_to_shard_0() -> None:
    async with FakeDiscord() as fake:
        first = fake.add_guild("First", on_shard=(0, 2))
        second = fake.add_guild("Second", on_shard=(1, 2))
        ada = fake.add_user(name="ada")
        for guild in (first, second):
            fake.add_member(guild, ada)
        in_first = fake.add_channel(first, "general")
        in_second = fake.add_channel(second, "general")
        dm = fake.add_dm(ada)
        with point_discord_py_at(fake):
            zero, one = await _sharded(0, 2), await _sharded(1, 2)
            try:
                assert [g.id for g in zero.client.guilds] == [int(first)]
                assert [g.id for g in one.client.guilds] == [int(second)]
                assert [i["shard"] for i in fake.identifies] == [[0, 2], [1, 2]]
                fake.user_says(in_first, ada, "to shard 0")
                fake.user_says(in_second, ada, "to shard 1")
                fake.user_says(dm, ada, "a DM")
                # A connection's events come in order: a DM sent to shard 1 would be there
                # before this.
                fake.user_says(in_second, ada, "last")
                await _wait_messages(fake, zero, 2)
                await _wait_messages(fake, one, 2)
                assert [m.content for m in zero.messages] == ["to shard 0", "a DM"]
                assert [m.content for m in one.messages] == ["to shard 1", "last"]
            finally:
                for bot in (zero, one):
                    await bot.client.close()
                    await asyncio.wait_for(bot.task, 5)


@pytest.mark.parametrize("shard", [[2, 2], [0, 0], [-1, 2], [0]])
async def test_an_invalid_shard_is_closed_with_4010(shard: list[int]) -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        async with session.ws_connect(fake.gateway_url) as ws:
            await ws.receive_json()  # HELLO
            identify = {"token": TOKEN, "intents": 0, "properties": {}, "shard": shard}
            await ws.send_json({"op": 2, "d": identify})
            closed = await ws.receive()
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4010


async def test_a_closed_gateway_refuses_connections() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        fake.gateway_open = False
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(fake.gateway_url)
