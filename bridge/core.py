"""The orchestration core: one thread ↔ one chat, one answer per question.

Turns of one thread run one at a time in arrival order; turns of different
threads run concurrently, bounded by a semaphore. Every turn ends in exactly
one ``finish`` or ``fail`` at the reply handle and a done/failed turn record.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge import tree
from bridge.errors import BridgeError, TurnInterrupted, user_message
from bridge.events import PlatformEvent, ThreadKey
from bridge.flows import TurnFlow, TurnRequest
from bridge.follow import AnswerFollower
from bridge.live import Event, LiveEvents
from bridge.openwebui import OpenWebUIClient
from bridge.pacing import PacedReply
from bridge.reply import Capabilities, ReplyHandle
from bridge.store import Conversation, DuplicateTurn, Store, Turn, TurnStatus

log = logging.getLogger(__name__)


# How the core reaches a thread again after a restart: None if it cannot.
ReplyFactory = Callable[[ThreadKey, Turn], ReplyHandle | None]


@dataclass(frozen=True)
class CoreOptions:
    default_model: str
    answer_timeout: float = 300.0
    max_concurrent_turns: int = 8
    title_generation: bool = True
    poll_interval: float = 0.5
    knowledge_ids: tuple[str, ...] = ()
    filter_ids: tuple[str, ...] = ()


@dataclass
class TurnResult:
    status: TurnStatus
    chat_id: str | None = None
    answer: str = ""
    error: BaseException | None = None
    increments: int = 0
    first_text_at: float | None = None  # monotonic time the reply handle first got text
    tree_problems: list[str] = field(default_factory=list)


class Bridge:
    def __init__(
        self,
        client: OpenWebUIClient,
        store: Store,
        flow: TurnFlow,
        options: CoreOptions,
        *,
        live: LiveEvents | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._flow = flow
        self._options = options
        self._live = live
        server = client.server
        self._marks_done = server.marks_answers_done if server else True
        self._follower = AnswerFollower(
            client,
            marks_done=self._marks_done,
            poll_interval=options.poll_interval,
            timeout=options.answer_timeout,
        )
        self._slots = asyncio.Semaphore(options.max_concurrent_turns)
        self._tails: dict[ThreadKey, asyncio.Task[TurnResult | None]] = {}

    @property
    def idle(self) -> bool:
        """No turn is queued or under way."""
        return not self._tails

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the turns under way (for a clean shutdown)."""
        pending = list(self._tails.values())
        if pending:
            await asyncio.wait(pending, timeout=grace)

    async def knows_thread(self, key: ThreadKey) -> bool:
        """Whether the thread is a conversation already (so replies continue it)."""
        return await self._store.get_conversation(key) is not None

    @property
    def follow_mode(self) -> str:
        return "events" if self._live is not None else "polling"

    async def submit(
        self, event: PlatformEvent, reply: ReplyHandle, capabilities: Capabilities
    ) -> asyncio.Task[TurnResult | None] | None:
        """Queue the event's turn behind its thread's running turn. Returns None for a
        delivery seen before; the task's result is None if the message already had a turn."""
        if not await self._store.claim_event(event.thread.platform, event.event_id):
            log.info("duplicate delivery %s ignored", event.event_id)
            return None
        # The mapping exists from the moment a thread is accepted, so a follow-up
        # arriving while the first answer runs is recognised as part of it.
        if await self._store.get_conversation(event.thread) is None:
            model = event.model or self._options.default_model
            await self._store.create_conversation(event.thread, model)
        previous = self._tails.get(event.thread)
        task = asyncio.create_task(self._run_after(previous, event, reply, capabilities))
        self._tails[event.thread] = task
        task.add_done_callback(lambda t: self._forget(event.thread, t))
        return task

    def _forget(self, key: ThreadKey, task: asyncio.Task[TurnResult | None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]

    async def _run_after(
        self,
        previous: asyncio.Task[TurnResult | None] | None,
        event: PlatformEvent,
        reply: ReplyHandle,
        capabilities: Capabilities,
    ) -> TurnResult | None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        async with self._slots:
            return await self._turn(event, reply, capabilities)

    async def _turn(
        self, event: PlatformEvent, reply: ReplyHandle, capabilities: Capabilities
    ) -> TurnResult | None:
        conversation = await self._store.get_conversation(event.thread)
        assert conversation is not None, "created in submit()"
        try:
            turn = await self._store.start_turn(
                conversation.id, event.message_id, str(uuid.uuid4()), str(uuid.uuid4())
            )
        except DuplicateTurn:
            log.info("message %s already has a turn", event.message_id)
            return None

        paced = PacedReply(reply, capabilities)
        result = TurnResult(status=TurnStatus.RUNNING, chat_id=conversation.chat_id)

        async def answer() -> None:
            await paced.start()
            await self._answer(
                conversation, event, turn.user_message_id, turn.assistant_message_id, paced, result
            )

        await self._settle(turn, paced, result, answer())
        return result

    async def _settle(
        self, turn: Turn, paced: PacedReply, result: TurnResult, work: Awaitable[None]
    ) -> None:
        """Run a turn's work; record done, or fail with one message to the thread."""
        try:
            await work
            await self._store.complete_turn(turn.id)
            result.status = TurnStatus.DONE
        except Exception as exc:  # every failure ends in one message and a failed turn
            result.status, result.error = TurnStatus.FAILED, exc
            if not isinstance(exc, BridgeError):
                log.exception("turn for %s failed unexpectedly", turn.platform_message_id)
            else:
                log.warning("turn for %s failed: %s", turn.platform_message_id, exc)
            await self._store.fail_turn(turn.id, f"{type(exc).__name__}: {exc}"[:500])
            await self._close_failed_answer(result.chat_id, turn.assistant_message_id)
            try:
                await paced.fail(user_message(exc))
            except Exception:
                log.exception("could not tell the thread that the turn failed")

    async def recover(
        self, platform: str, reply_for: ReplyFactory | None, capabilities: Capabilities
    ) -> list[TurnResult]:
        """Finish the turns of ``platform`` that an earlier run left running (a crash or
        restart mid-answer): deliver the answer if Open WebUI completed or is still
        writing it, else tell the thread to ask again. Without ``reply_for`` (no way
        back to the thread) only the records are settled."""
        results = []
        for turn in await self._store.unfinished_turns():
            conversation = await self._store.conversation_by_id(turn.conversation_id)
            if conversation is None or conversation.key.platform != platform:
                continue
            handle = reply_for(conversation.key, turn) if reply_for else None
            paced = PacedReply(handle or _NoThread(), capabilities)
            result = TurnResult(status=TurnStatus.RUNNING, chat_id=conversation.chat_id)
            await self._settle(turn, paced, result, self._resume(turn, paced, result))
            results.append(result)
        return results

    async def _resume(self, turn: Turn, paced: PacedReply, result: TurnResult) -> None:
        chat_id, answer_id = result.chat_id, turn.assistant_message_id
        if chat_id is None:
            raise TurnInterrupted(f"turn {turn.id} never reached Open WebUI")
        message = tree.message_in(await self._client.get_chat(chat_id), answer_id)
        running = await self._client.running_tasks(chat_id)
        if message is None or (not running and not _complete(message, self._marks_done)):
            raise TurnInterrupted(f"answer {answer_id} was cut off by a restart")
        await self._follow(chat_id, answer_id, paced, result, events=None)
        await self._deliver(chat_id, answer_id, paced, result)

    async def _answer(
        self,
        conversation: Conversation,
        event: PlatformEvent,
        user_id: str,
        assistant_id: str,
        paced: PacedReply,
        result: TurnResult,
    ) -> None:
        events = self._live.subscribe(assistant_id) if self._live else None
        try:
            request = TurnRequest(
                chat_id=conversation.chat_id,
                parent_id=conversation.last_answer_id if conversation.chat_id else None,
                user_message_id=user_id,
                assistant_message_id=assistant_id,
                content=question_text(event),
                model=conversation.model,
                session_id=(self._live.session_id if self._live else None) or str(uuid.uuid4()),
                title_generation=self._options.title_generation,
                knowledge_ids=self._options.knowledge_ids,
                filter_ids=self._options.filter_ids,
            )
            chat_id = await self._flow.start(request)
            result.chat_id = chat_id
            if conversation.chat_id != chat_id:
                await self._store.set_chat_id(conversation.id, chat_id)

            await self._follow(chat_id, assistant_id, paced, result, events)
        finally:
            if self._live:
                self._live.unsubscribe(assistant_id)
        await self._deliver(chat_id, assistant_id, paced, result)

    async def _follow(
        self,
        chat_id: str,
        assistant_id: str,
        paced: PacedReply,
        result: TurnResult,
        events: asyncio.Queue[Event] | None,
    ) -> None:
        async def on_text(text: str) -> None:
            if result.first_text_at is None:
                result.first_text_at = time.monotonic()
            await paced.update(text)

        state = await self._follower.follow(chat_id, assistant_id, on_text, events)
        result.increments = state.increments

    async def _deliver(
        self, chat_id: str, assistant_id: str, paced: PacedReply, result: TurnResult
    ) -> None:
        """Finalise the stored answer, check the tree, and show the stored text."""
        chat = await self._flow.finalise(chat_id, assistant_id)
        stored = tree.message_text(tree.message_in(chat, assistant_id) or {})
        result.tree_problems = tree.problems(tree.history_of(chat))
        if result.tree_problems:
            log.error("chat %s tree problems after turn: %s", chat_id, result.tree_problems)
        if paced.shown_text and not stored.startswith(paced.shown_text):
            log.warning("streamed text diverged from the stored answer in chat %s", chat_id)
        result.answer = stored
        await paced.finish(stored)

    async def _close_failed_answer(self, chat_id: str | None, assistant_id: str) -> None:
        """Leave no answer half-open: 0.6.x does not mark a failed answer done."""
        if chat_id is None:
            return
        try:
            await self._flow.finalise(chat_id, assistant_id)
        except Exception as exc:  # the user already gets the real error
            log.warning("could not close failed answer in chat %s: %s", chat_id, exc)


def question_text(event: PlatformEvent) -> str:
    """What the model and the admin see for the question: earlier thread messages
    when the bot joins late, and the author's name so speakers can be told apart."""
    lines: list[str] = []
    if event.context:
        lines.append("Earlier in this thread:")
        lines.extend(f"{m.author_name}: {m.text}" for m in event.context)
        lines.append("")
    if event.author_name:
        lines.append(f"{event.author_name}: {event.text}")
    else:
        lines.append(event.text)
    return "\n".join(lines)


class _NoThread:
    """Reply handle for a turn whose thread cannot be reached (e.g. a closed terminal)."""

    async def start(self) -> None:
        pass

    async def update(self, text: str) -> None:
        pass

    async def finish(self, text: str) -> None:
        pass

    async def fail(self, message: str) -> None:
        pass


def _complete(message: tree.Message, marks_done: bool) -> bool:
    """Whether a stored answer with no task behind it is whole."""
    if message.get("done") is True:
        return True
    # 0.6.x never marks done: with no task running, stored text is the whole answer.
    return not marks_done and bool(tree.message_text(message))
