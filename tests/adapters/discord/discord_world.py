"""The Discord adapter's unit-test world: the local fake Discord with a guild, a
channel and Ada, and a small stand-in for the core.

The stand-in records what the adapter queues and judges it with the real
admission rules (``bridge.admission``), so a refusal carries the notice the real
core would give; it answers the channel rules from a real ``bridge.channels``
table, and records ratings, stops and regenerate requests. The real core with
real Open WebUI is the e2e suite's job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

from adapters.discord.settings import DiscordSettings
from bridge.actions import Act, Acted, Action, Outcome
from bridge.admission import Admission
from bridge.channels import ChannelRules, Channels
from bridge.errors import QuestionRefused
from bridge.events import PlatformEvent, ThreadKey
from bridge.openwebui.organise import Rater
from bridge.policy import AccessPolicy, Asker, Limits, judge
from bridge.reply import Platform
from tests.fakes.discord_server import FakeDiscord, point_discord_py_at

TOKEN = "fake-bot-token"


@dataclass
class Core:
    """Stands in for ``bridge.intake.Bridge`` (and the store's reply places): a ledger
    of event ids and known threads."""

    policy: AccessPolicy = field(default_factory=AccessPolicy)
    limits: Limits = field(default_factory=Limits)
    events: list[PlatformEvent] = field(default_factory=list)
    askers: list[Asker | None] = field(default_factory=list)  # of every submit, in order
    refused: list[tuple[PlatformEvent, str]] = field(default_factory=list)  # with the reason
    seen: set[str] = field(default_factory=set)
    threads: set[ThreadKey] = field(default_factory=set)
    started_over: list[ThreadKey] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # event ids delivered again
    platform: Platform | None = None
    channels: Channels = field(default_factory=Channels)
    answers: dict[str, ThreadKey] = field(default_factory=dict)  # answer message → thread
    running: set[ThreadKey] = field(default_factory=set)  # threads with an answer under way
    stopped: list[ThreadKey] = field(default_factory=list)
    ratings: list[tuple[str, Rater, int, bool]] = field(default_factory=list)
    regenerated: list[tuple[str, str]] = field(default_factory=list)  # (message, event id)
    regenerate_refusal: QuestionRefused | None = None  # what regenerate raises, if anything
    # Where answers go when a thread could not be opened (the store's, in the real core).
    reply_channels: dict[ThreadKey, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._admission = Admission(self.policy, self.limits)

    def register(self, platform: Platform) -> None:
        self.platform = platform

    @property
    def access(self) -> AccessPolicy:
        return self.policy

    async def knows_thread(self, key: ThreadKey) -> bool:
        return key in self.threads

    async def submit(self, event: PlatformEvent, asker: Asker | None = None) -> object:
        self.askers.append(asker)
        verdict = self._admission.check(_as_judged(event), asker)
        if verdict.refusal is not None:
            self.refused.append((event, verdict.refusal.value))
            raise QuestionRefused(verdict.refusal.value, verdict.notice)
        if event.event_id in self.seen:
            self.duplicates.append(event.event_id)
            return None
        self._admission.taken(event)
        self.seen.add(event.event_id)
        self.threads.add(event.thread)
        self.events.append(event)
        return object()

    async def reply_channel(self, key: ThreadKey) -> str | None:
        return self.reply_channels.get(key)

    async def set_reply_channel(self, key: ThreadKey, channel: str) -> None:
        self.reply_channels[key] = channel

    async def start_over(self, key: ThreadKey) -> bool:
        self.started_over.append(key)
        self.threads.discard(key)
        return True

    def rules(self, channel: str) -> ChannelRules:
        return self.channels.rules(channel)

    async def stop(self, key: ThreadKey) -> bool:
        if key not in self.running:
            return False
        self.running.discard(key)
        self.stopped.append(key)
        return True

    async def act(self, action: Action) -> Acted:
        # Judged as the core judges (bridge.intake.Bridge.act); what the adapter sends
        # is under test here.
        if action.asker is not None and judge(self.policy, action.asker) is not None:
            return Acted(Outcome.NOT_ALLOWED)
        if action.act in (Act.RATE, Act.UNRATE):  # recorded on any message, as sent
            self.ratings.append(
                (action.message_id, action.person, action.vote, action.act is Act.UNRATE)
            )
        key = self.answers.get(action.message_id)
        if key is None:
            return Acted(Outcome.NOT_AN_ANSWER)
        if action.act is Act.STOP:
            return Acted(Outcome.DONE if await self.stop(key) else Outcome.NOTHING)
        if action.act is Act.REGENERATE:
            if self.regenerate_refusal is not None:
                return Acted(Outcome.REFUSED, self.regenerate_refusal.notice, key)
            if (action.message_id, action.event_id) in self.regenerated:
                return Acted(Outcome.NOTHING)
            self.regenerated.append((action.message_id, action.event_id))
        return Acted(Outcome.DONE)


def _as_judged(event: PlatformEvent) -> PlatformEvent:
    """A file alone is a question (issue 16): judged as if its files were its text, as
    the core's admission does once it reads files."""
    if event.files and not event.text.strip():
        return replace(event, text=" ".join(f.name for f in event.files))
    return event


@dataclass
class World:
    fake: FakeDiscord
    guild: str
    general: str
    ada: str
    role: str  # Ada's role in the guild
    core: Core
    settings: DiscordSettings


@asynccontextmanager
async def discord_world(core: Core | None = None) -> AsyncIterator[World]:
    """Lab with #general and Ada ("Ada L." there, a mathematician); discord.py pointed
    at the fake (its globals restored afterwards)."""
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Lab")
        general = fake.add_channel(guild, "general")
        ada = fake.add_user(name="ada", global_name="Ada Lovelace")
        role = fake.add_role(guild, name="mathematicians")
        fake.add_member(guild, ada, nick="Ada L.", roles=[role])
        settings = DiscordSettings(
            bot_token=TOKEN,
            api_url=fake.api_url,
            gateway_url=fake.gateway_url,
            update_interval=0.0,
        )
        with point_discord_py_at(fake):
            yield World(fake, guild, general, ada, role, core or Core(), settings)


async def next_event(world: World, count: int) -> PlatformEvent:
    await world.fake.wait_for(lambda: len(world.core.events) >= count, what="a queued event")
    return world.core.events[count - 1]


async def next_asker(world: World, count: int) -> Asker:
    """The asker of the ``count``-th question the adapter handed the core."""
    await world.fake.wait_for(lambda: len(world.core.askers) >= count, what="a submitted asker")
    asker = world.core.askers[count - 1]
    assert asker is not None, "the adapter submitted without an asker"
    return asker
