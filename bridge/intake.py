"""The orchestration core's intake: what adapters call. One thread ↔ one chat, one
answer per question.

``submit`` records a question durably (delivery claimed and turn queued in one
transaction); ``bridge.queue`` runs each thread's turns one at a time in the
platform's order, through ``bridge.turns``. ``act`` takes what people do to
answers (``bridge.actions``) and decides it here, the same for every platform.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import replace

from cachetools import TTLCache

from bridge import metrics
from bridge.actions import Act, Acted, Action, Outcome
from bridge.admission import Admission
from bridge.channels import ChannelRules
from bridge.errors import QuestionRefused
from bridge.events import PlatformEvent, ThreadKey
from bridge.openwebui.client import OpenWebUIClient
from bridge.openwebui.filing import Filing
from bridge.openwebui.flows import TurnFlow
from bridge.openwebui.live import LiveEvents
from bridge.openwebui.organise import Organiser
from bridge.openwebui.ratings import SETTLE, Ratings
from bridge.options import CoreOptions
from bridge.policy import AccessPolicy, Asker, Refusal, judge
from bridge.queue import ThreadQueue
from bridge.reply import Platform
from bridge.results import TurnResult
from bridge.store import (
    OPEN_STATUSES,
    Conversation,
    NewTurn,
    Store,
    ThreadBusy,
    Turn,
    TurnStatus,
)
from bridge.turns import TurnRunner, event_of

log = logging.getLogger(__name__)

REFUSED_MEMORY = 3600.0  # seconds a refused message's copies are recognised

REGENERATE_LATEST_ONLY = "I can only write a new answer to the latest question in a thread."
REGENERATE_UNDER_WAY = "I'm still writing this answer. Ask for another once it's done."
EDIT_LATEST_ONLY = "Edits apply to the latest question; ask again to get an answer to this one."
REGENERATE_THREAD_BUSY = "I'm still answering in this thread. Ask for another answer once I'm done."


class Bridge:
    def __init__(
        self,
        client: OpenWebUIClient,
        store: Store,
        flow: TurnFlow,
        options: CoreOptions,
        *,
        live: LiveEvents | None = None,
        filing: Filing | None = None,
        rating_settle: float = SETTLE,
    ) -> None:
        self._store = store
        self._options = options
        self._live = live
        self._platforms: dict[str, Platform] = {}
        self._turns = TurnRunner(
            client, store, flow, options, self._platforms, live=live, filing=filing
        )
        self._ratings = Ratings(Organiser(client), store, rating_settle)
        self._queue: ThreadQueue[TurnResult] = ThreadQueue(
            store, self._run, max_concurrent=options.max_concurrent_turns, leases=options.leases
        )
        self._keeper: asyncio.Task[None] | None = None  # renews leases (``ThreadQueue.keep``)
        self._waiting: set[int] = set()  # turns taken by this process, not started yet
        # Messages refused lately: nothing is stored for them, yet a copy (a retry,
        # Slack's second event kind for a mention) must not be judged, told or counted again.
        self._refused: TTLCache[tuple[ThreadKey, str], bool] = TTLCache(10_000, REFUSED_MEMORY)
        self._admission = Admission(options.access, options.limits)
        self._admitting = asyncio.Lock()  # check → store → count, one question at a time

    # -- what adapters use --------------------------------------------------

    def register(self, platform: Platform) -> None:
        self._platforms[platform.name] = platform

    @property
    def idle(self) -> bool:
        """No turn is queued or under way in this process."""
        return self._queue.idle

    @property
    def follow_mode(self) -> str:
        return "events" if self._live is not None else "polling"

    async def knows_thread(self, key: ThreadKey) -> bool:
        """Whether the thread is a conversation already (so replies continue it)."""
        return await self._store.get_conversation(key) is not None

    @property
    def access(self) -> AccessPolicy:
        """The operator's access settings (adapters look up the facts it needs)."""
        return self._options.access

    async def submit(
        self, event: PlatformEvent, asker: Asker | None = None
    ) -> asyncio.Future[TurnResult] | None:
        """Queue the event's turn durably behind its thread's earlier turns. None for a
        delivery (or platform message) seen before; else a future for the turn's result.

        Raises ``QuestionRefused`` when the question is not taken: ``asker`` may not ask
        here (``bridge.policy``), the text is empty or too long, the asker is over the
        rate limit, or the thread is full. Nothing is stored then. ``asker`` None
        (a local source such as the console) skips the access policy only."""
        async with self._admitting:
            # A copy of a question already taken (a platform retry, or Slack's second
            # event kind for a mention) is no question: no rate limit, bound or notice.
            seen = (event.thread, event.message_id)
            # ``or_event``: refused by another replica (its copy went there): no second notice.
            if seen in self._refused or await self._store.delivered(
                event.thread, event.event_id, event.message_id, or_event=_refusal(event)
            ):
                log.info("duplicate delivery %s ignored", event.event_id)
                return None
            verdict = self._admission.check(event, asker)
            turn = None
            if verdict.refusal is None:
                try:
                    turn = await self._store.enqueue_turn(self._new_turn(event))
                except ThreadBusy:
                    verdict = self._admission.busy(event)
                else:
                    if turn is not None:
                        self._admission.taken(event)
        if verdict.refusal is not None:
            key = event.thread
            if verdict.refusal is not Refusal.UNVERIFIED:  # a failed look-up may pass next time
                self._refused[seen] = True  # its copies are no second refusal
                if not await self._store.claim_event(key.platform, _refusal(event)):
                    return None  # another replica refused a copy just now, and said so
                await self._store.claim_event(key.platform, _refusal(event, text=False))
            # The reason and where, never the text: a refused question is not kept.
            log.info(
                "refused message %s from %s in %s %s/%s: %s",
                event.message_id,
                event.author_id,
                key.platform,
                key.workspace,
                key.channel,
                verdict.refusal.value,
            )
            metrics.REFUSALS.labels(key.platform, verdict.refusal.value).inc()
            raise QuestionRefused(verdict.refusal.value, verdict.notice)
        if turn is None:
            log.info("duplicate delivery %s ignored", event.event_id)
            return None
        return self._queued(turn.id, turn.conversation_id)

    def _queued(self, turn_id: int, conversation_id: int) -> asyncio.Future[TurnResult]:
        self._waiting.add(turn_id)
        metrics.QUEUED.inc()
        result = self._queue.watch(turn_id)
        self._queue.wake(conversation_id)
        return result

    async def _run(self, turn: Turn) -> TurnResult:
        if turn.id in self._waiting:
            self._waiting.discard(turn.id)
            metrics.QUEUED.dec()
        return await self._turns.run(turn)

    def _new_turn(self, event: PlatformEvent, question_id: str | None = None) -> NewTurn:
        return NewTurn(
            key=event.thread,
            event_id=event.event_id,
            platform_message_id=event.message_id,
            sort_key=event.order,
            event=event.to_json(),
            model=event.model or self.rules(event.channel).model or self._options.default_model,
            user_message_id=question_id or str(uuid.uuid4()),
            assistant_message_id=str(uuid.uuid4()),
            limit=self._options.limits.max_queued_per_thread,
        )

    def rules(self, channel: str) -> ChannelRules:
        """How ``channel`` behaves (``bridge.channels``); adapters read ``respond_to``."""
        return self._options.channels.rules(channel)

    # -- what people do to answers ----------------------------------------------

    async def act(self, action: Action) -> Acted:
        """A person's 👍/👎 (taken back too), ⏹ or 🔁 on the answer in platform message
        ``action.message_id``. Counts only on a message holding an answer of the bridge,
        from a person who may ask there (the access rules that judge questions). ⏹
        stops only the answer being written; 🔁 redoes only the thread's newest answer
        while nothing else of the thread is queued or under way; a rating is the
        person's one rating of that answer, the latest reaction winning."""
        turn = await self._store.turn_by_reply(action.platform, action.message_id)
        conversation = await self._store.conversation_by_id(turn.conversation_id) if turn else None
        if turn is None or conversation is None:
            return Acted(Outcome.NOT_AN_ANSWER)
        if action.asker is not None and not self._may_act(action.asker):
            log.info(
                "%s by %s on %s ignored: not allowed here",
                action.act.value,
                action.person.user_id,
                action.message_id,
            )
            return Acted(Outcome.NOT_ALLOWED)
        if action.act is Act.STOP:
            if not await self._stop_answer(conversation.id, turn.id):
                return Acted(Outcome.NOTHING)  # ⏹ on an earlier answer stops nothing
            log.info("answer in %s stopped by %s", conversation.key.thread, action.person.user_id)
            return Acted(Outcome.DONE)
        if action.act is Act.REGENERATE:
            return await self._regenerate(turn, conversation, action)
        if conversation.chat_id is None:
            return Acted(Outcome.NOTHING)  # the answer never reached a chat
        await self._ratings.react(
            turn.id,
            conversation.chat_id,
            turn.assistant_message_id,
            action.person,
            action.vote,
            removed=action.act is Act.UNRATE,
        )
        return Acted(Outcome.DONE)

    def _may_act(self, asker: Asker) -> bool:
        if not asker.direct and self.rules(asker.channel).respond_to == "off":
            return False  # the bot answers nothing in that channel
        return judge(self._options.access, asker) is None

    async def write_ratings(self) -> None:
        """Write the ratings people gave so far now, settled or not (shutdown, tests)."""
        await self._ratings.flush()

    async def edit(
        self, event: PlatformEvent, asker: Asker | None = None
    ) -> asyncio.Future[TurnResult] | None:
        """The question ``event.message_id`` now reads ``event.text``. Still queued: its
        stored event takes the new text (answered as edited). Being answered, or
        answered, and the thread's newest question: the answer under way stops and an
        edit turn answers the new text beside the old question, in the old answer's
        messages. Older questions: refused with a note. A message refused before (too
        long, say) is judged as a new question; any other message that was no question
        here changes nothing (None), as does a repeated delivery. Judged like a
        question (access, text, rate limit); raises ``QuestionRefused``."""
        key = event.thread
        async with self._admitting:
            own_id = f"{event.message_id}~{event.event_id}"  # an edit turn's platform id
            if await self._store.delivered(key, event.event_id, own_id):
                log.info("duplicate edit %s ignored", event.event_id)
                return None
            conversation = await self._store.get_conversation(key)
            turns = await self._store.turns(conversation.id) if conversation else []
            asked = [t for t in turns if event_of(t, key).asked_in == event.message_id]
            if conversation is not None and asked:
                return await self._edit(event, asker, conversation, turns, asked[-1])
            refused = self._refused.pop((key, event.message_id), False)
            if not refused and not await self._store.delivered(
                key, _refusal(event, text=False), event.message_id
            ):
                return None  # no question the bridge took (on any replica)
        return await self.submit(event, asker)

    async def _edit(
        self,
        event: PlatformEvent,
        asker: Asker | None,
        conversation: Conversation,
        turns: list[Turn],
        target: Turn,
    ) -> asyncio.Future[TurnResult] | None:
        """``edit`` of a question the thread has; ``target`` is its newest turn (the
        answer, a new answer, or an earlier edit). Runs under ``_admitting``."""
        key = event.thread
        verdict = self._admission.check(event, asker)
        if verdict.refusal is not None:
            self._refuse(event, verdict.refusal.value)
            raise QuestionRefused(verdict.refusal.value, verdict.notice)
        stored = event_of(target, key)
        files = event.files or stored.files
        if target.status is TurnStatus.QUEUED and not stored.regenerates:
            edited = replace(stored, text=event.text, files=files)
            if await self._store.update_queued_event(target.id, edited.to_json()):
                await self._store.claim_event(key.platform, event.event_id)
                self._admission.taken(event)
                log.info("queued question %s edited", event.message_id)
                return self._queue.watch(target.id)
        if turns[-1].id != target.id:
            self._refuse(event, "not the latest question")
            raise QuestionRefused("not the latest question", EDIT_LATEST_ONLY)
        await self._stop_answer(conversation.id, target.id)  # the old text's answer is moot
        again = replace(
            stored,
            event_id=event.event_id,
            message_id=f"{event.message_id}~{event.event_id}",
            question_message_id=stored.asked_in,
            order=stored.order + "~",  # after the question it edits, before anything newer
            author_id=event.author_id,
            author_name=event.author_name,
            text=event.text,
            files=files,
            context=(),
            needs_context=False,
            regenerates=0,
            edits=target.id,
        )
        try:
            new = await self._store.enqueue_turn(self._new_turn(again))
        except ThreadBusy:
            busy = self._admission.busy(event)
            self._refuse(event, Refusal.BUSY.value)
            raise QuestionRefused(Refusal.BUSY.value, busy.notice) from None
        if new is None:
            return None
        self._admission.taken(event)
        log.info("question %s edited after it was answered", event.message_id)
        return self._queued(new.id, new.conversation_id)

    def _refuse(self, event: PlatformEvent, reason: str) -> None:
        """Count and log an edit not taken (never its text)."""
        key = event.thread
        log.info(
            "refused edit of %s from %s in %s %s/%s: %s",
            event.message_id,
            event.author_id,
            key.platform,
            key.workspace,
            key.channel,
            reason,
        )
        metrics.REFUSALS.labels(key.platform, reason).inc()

    async def retract(self, key: ThreadKey, message_id: str) -> bool:
        """The question ``message_id`` was deleted on the platform. Queued: dropped, never
        answered, nothing reaches Open WebUI (True). Being answered: the answer stops,
        as with ⏹ (True). Answered: the chat keeps it as it is (False)."""
        conversation = await self._store.get_conversation(key)
        if conversation is None:
            return False
        async with self._admitting:
            # Copies of the deleted message's delivery (Slack's second event kind) are no question.
            self._refused[(key, message_id)] = True
            dropped = False
            for turn in await self._store.turns(conversation.id):
                if event_of(turn, key).asked_in != message_id:
                    continue
                if await self._store.drop_queued_turn(turn.id):
                    dropped = True
                    self._queue.forget(turn.id)
                    if turn.id in self._waiting:
                        self._waiting.discard(turn.id)
                        metrics.QUEUED.dec()
                    log.info("queued question %s deleted: not answered", message_id)
        for turn in await self._store.turns(conversation.id):
            if turn.status is TurnStatus.RUNNING and event_of(turn, key).asked_in == message_id:
                if await self._stop_answer(conversation.id, turn.id):
                    log.info("question %s deleted while being answered: stopped", message_id)
                    return True
        return dropped

    async def stop(self, key: ThreadKey) -> bool:
        """Stop the answer under way in the thread (a command such as /stop): the thread
        keeps what was shown, marked stopped. False when nothing is being answered."""
        conversation = await self._store.get_conversation(key)
        for turn in await self._store.turns(conversation.id) if conversation else []:
            if turn.status is TurnStatus.RUNNING:
                return await self._stop_answer(turn.conversation_id, turn.id)
        return False

    async def _stop_answer(self, conversation_id: int, turn_id: int) -> bool:
        """Stop turn ``turn_id``'s answer: here when this process writes it, else through
        the store for the process that does (it notices within ``LeaseTimes.every``).
        False when the turn's answer is not being written."""
        if self._stop_here(conversation_id, turn_id):
            return True
        turn = await self._store.turn_by_id(turn_id)
        if turn is None or turn.status is not TurnStatus.RUNNING:
            return False
        return await self._store.request_stop(turn_id)

    def _stop_here(self, conversation_id: int, turn_id: int) -> bool:
        running = self._turns.running(conversation_id)
        if running is None or running.turn_id != turn_id:
            return False
        running.delivery.stopped.set()
        return True

    async def _regenerate(self, turn: Turn, conversation: Conversation, action: Action) -> Acted:
        """Another answer to ``turn``'s question: a new sibling in Open WebUI's tree,
        shown in the same platform messages; the thread continues under it. It counts
        against the person's rate limit like a question."""
        original = event_of(turn, conversation.key)
        again = replace(
            original,
            event_id=action.event_id,
            # Its own platform message id: the store knows each turn by one.
            message_id=f"{original.asked_in}~{action.event_id}",
            question_message_id=original.asked_in,
            order=original.order + "~",  # after its original, before anything newer
            regenerates=turn.id,
            needs_context=False,
        )
        # Checked and queued under the lock questions are admitted with, so no question
        # can slip in between: a new answer to an older question would become the point
        # the thread's next question chains under, leaving the newer turns behind.
        async with self._admitting:
            if await self._store.delivered(again.thread, again.event_id, again.message_id):
                return Acted(Outcome.NOTHING)
            turns = await self._store.turns(conversation.id)
            if turn.status in OPEN_STATUSES:
                return _refused("answer under way", REGENERATE_UNDER_WAY, again.thread)
            if any(t.status in OPEN_STATUSES for t in turns):
                return _refused("thread busy", REGENERATE_THREAD_BUSY, again.thread)
            if max(turns, key=lambda t: t.id).user_message_id != turn.user_message_id:
                return _refused("not the latest answer", REGENERATE_LATEST_ONLY, again.thread)
            by = replace(again, author_id=action.person.user_id)
            if (refused := self._admission.check_rate(by)).refusal:
                return _refused(refused.refusal.value, refused.notice, again.thread)
            try:
                new = await self._store.enqueue_turn(self._new_turn(again, turn.user_message_id))
            except ThreadBusy:
                return _refused("thread busy", self._admission.busy(again).notice, again.thread)
            if new is not None:
                self._admission.taken(by)
        if new is None:
            return Acted(Outcome.NOTHING)
        log.info("new answer in %s asked by %s", conversation.key.thread, action.person.user_id)
        return Acted(Outcome.DONE, answer=self._queued(new.id, new.conversation_id))

    async def start_over(self, key: ThreadKey) -> bool:
        """The thread's next question opens a new chat (e.g. a DM's "/new"); the old
        chat stays in Open WebUI. Questions already queued finish in the old chat."""
        return await self._store.retire_conversation(key)

    async def resume(self, platform: str) -> int:
        """Run the turns of ``platform`` that an earlier process left queued or cut
        off, through the same per-thread queue as new events. Returns the number of
        conversations resumed. Call after ``register``."""
        await self._queue.reap()
        conversations = await self._store.open_conversations(platform, self._queue.owner)
        for conversation_id in conversations:
            self._queue.wake(conversation_id)
        if conversations:
            log.info("resuming %d conversation(s) of %s", len(conversations), platform)
        if self._keeper is None:
            self._keeper = asyncio.create_task(
                self._queue.keep(lambda: list(self._platforms), self._stop_here), name="leases"
            )
        return len(conversations)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the turns under way and queued, then leave the
        rest, their leases let go, to another replica or the next start (clean shutdown;
        ``drain(0)`` leaves the store and Open WebUI as a crash would, leases apart)."""
        await self._queue.drain(grace)  # the keeper renews the leases meanwhile
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        await self._store.release_leases(self._queue.owner)
        # Questions left queued are the next start's: no longer waiting in this process.
        metrics.QUEUED.dec(len(self._waiting))
        self._waiting.clear()
        await self.write_ratings()


def _refusal(event: PlatformEvent, *, text: bool = True) -> str:
    """The delivery id a refused message is remembered by in the store, for every
    replica: its place and text (a copy; an edit is a new text, judged anew), or its
    place alone (an edit of a message refused before is judged as a question)."""
    key = event.thread
    said = ":" + hashlib.sha256(event.text.encode()).hexdigest()[:16] if text else ""
    return f"refused:{key.workspace}:{key.channel}:{event.message_id}{said}"


def _refused(reason: str, notice: str | None, thread: ThreadKey) -> Acted:
    """A 🔁 not taken: counted like a refused question, told to the person."""
    metrics.REFUSALS.labels(thread.platform, reason).inc()
    return Acted(Outcome.REFUSED, notice, thread)
