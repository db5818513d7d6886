"""Running one turn: the adapter's look-ups (``prepare``), the turn into the chat
(``bridge.openwebui.flows``), the answer followed while ``bridge.delivery`` shows it,
then the stored answer as the final text. Every turn ends in exactly one ``finish``
or ``fail`` at its reply and a settled turn record. A turn found running at
start-up (a restart cut it off) is picked up where it stands in Open WebUI, and its
reply edits the platform messages it already occupies.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from enum import Enum
from typing import Any, NamedTuple

from bridge import display, metrics, snippets, sources
from bridge.attachments import Attachments, FileBounds
from bridge.channels import ChannelRules
from bridge.delivery import Delivery
from bridge.errors import (
    BridgeError,
    ChatGone,
    OpenWebUIUnavailable,
    ReplyStopped,
    TurnInterrupted,
    user_message,
)
from bridge.events import PlatformEvent, ThreadKey
from bridge.logcontext import chat_known, turn_context
from bridge.openwebui import images, tree
from bridge.openwebui.client import OpenWebUIClient
from bridge.openwebui.filing import Filing
from bridge.openwebui.flows import ChatCreated, Placement, Started, TurnFlow, TurnRequest
from bridge.openwebui.follow import AnswerFollower
from bridge.openwebui.live import Event, LiveEvents
from bridge.options import CoreOptions
from bridge.reply import Platform
from bridge.results import TurnResult
from bridge.store import (
    Conversation,
    Store,
    Turn,
    TurnStatus,
)

log = logging.getLogger(__name__)


_SETTLE = 1.0  # seconds an answer whose task just ended is given to be marked done


class _Found(Enum):
    """Where a turn cut off by a restart stands in Open WebUI."""

    ABSENT = "absent"  # never reached the chat: run it from the start
    UNSTARTED = "unstarted"  # in the chat, completion never triggered
    UNDER_WAY = "under way"  # a task is still writing it
    FINISHED = "finished"  # complete (or failed) in the chat; only the thread lacks it
    CUT = "cut"  # partial text, no task: the answer will not grow any more


class Running(NamedTuple):
    """A conversation's answer under way."""

    turn_id: int
    delivery: Delivery


class TurnRunner:
    """Runs the turns ``bridge.queue`` hands it, one per thread at a time."""

    def __init__(
        self,
        client: OpenWebUIClient,
        store: Store,
        flow: TurnFlow,
        options: CoreOptions,
        platforms: dict[str, Platform],
        *,
        live: LiveEvents | None = None,
        filing: Filing | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._flow = flow
        self._options = options
        self._platforms = platforms
        self._live = live
        self._filing = filing
        self._marks_done = client.server.marks_answers_done if client.server else True
        self._follower = AnswerFollower(
            client,
            marks_done=self._marks_done,
            poll_interval=options.poll_interval,
            timeout=options.answer_timeout,
        )
        self.attachments = Attachments(
            client, store, FileBounds(options.max_file_mb, options.max_files)
        )
        self._told_fallback: set[int] = set()  # conversations told their model is away
        self._running: dict[int, Running] = {}  # by conversation id

    def running(self, conversation_id: int) -> Running | None:
        """The conversation's answer under way, if any."""
        return self._running.get(conversation_id)

    def rules(self, channel: str) -> ChannelRules:
        return self._options.channels.rules(channel)

    async def run(self, turn: Turn) -> TurnResult:
        conversation = await self._store.conversation_by_id(turn.conversation_id)
        if conversation is None:
            raise LookupError(f"turn {turn.id} has no conversation")
        platform = conversation.key.platform
        with turn_context(turn.id, conversation.key, conversation.chat_id):
            started = time.monotonic()
            metrics.ANSWERING.inc()
            try:
                result = await self._run(turn, conversation)
            finally:
                metrics.ANSWERING.dec()
            first = result.first_text_at
            metrics.TURNS.labels(platform, result.status.value).inc()
            metrics.ANSWER.labels(platform).observe(time.monotonic() - started)
            if first is not None:
                metrics.FIRST_TEXT.labels(platform).observe(first - started)
            # One line per turn for operators: how it ended and how long it took, no text.
            log.info(
                "turn %s %s in %.1f s (first text after %s, %d characters)",
                turn.id,
                result.status.value,
                time.monotonic() - started,
                f"{first - started:.1f} s" if first else "none",
                len(result.answer),
            )
            return result

    async def _run(self, turn: Turn, conversation: Conversation) -> TurnResult:
        platform = self._platforms.get(conversation.key.platform)
        if platform is None:
            raise LookupError(f"no adapter serves {conversation.key.platform!r} in this process")
        if turn.status == TurnStatus.QUEUED:
            await self._store.mark_running(turn.id)
        event = event_of(turn, conversation.key)
        history = await self._chat_history(conversation)
        if conversation.chat_id is not None and history is None:
            # Deleted in Open WebUI (alone or with its folder): the thread goes on in a
            # new chat, given the thread so far as a late join is.
            log.info(
                "chat %s of thread %s was deleted in Open WebUI; the thread continues in a "
                "new chat",
                conversation.chat_id,
                conversation.key.thread,
            )
            await self._store.forget_chat(conversation.id)
            conversation = replace(conversation, chat_id=None, last_answer_id=None)
            event = replace(event, needs_context=True, context=())
        try:
            event = await platform.prepare(event)
        except Exception:  # adapters degrade look-ups themselves; this is a last resort
            log.exception("preparing message %s failed; using it as delivered", event.message_id)

        async def save_ids(ids: Sequence[str]) -> None:
            await self._store.set_reply_ids(turn.id, ids)

        reply_ids = turn.reply_ids
        replaces = event.regenerates or event.edits
        if replaces and not reply_ids:
            # A new answer (or the answer to an edited question) shows in the messages
            # of the answer it replaces.
            replaced = await self._store.turn_by_id(replaces)
            reply_ids = replaced.reply_ids if replaced is not None else ()
            if reply_ids:
                await save_ids(reply_ids)
        rules = self.rules(event.channel)
        capabilities = platform.capabilities
        if rules.update_interval is not None:
            capabilities = replace(
                capabilities,
                min_update_interval=max(capabilities.min_update_interval, rules.update_interval),
            )
        delivery = Delivery(
            platform.reply(event, reply_ids, save_ids),
            capabilities,
            lambda text: (
                snippets.extract(
                    display.visible_text(text, self._options.reasoning),
                    snippets.threshold(capabilities),
                    final=False,
                ).text
            ),
            replacing=bool(replaces and reply_ids),
        )
        result = TurnResult(status=TurnStatus.RUNNING, chat_id=conversation.chat_id)
        self._running[conversation.id] = Running(turn.id, delivery)
        try:
            await self._settle(conversation, turn, event, delivery, result, history)
        finally:
            self._running.pop(conversation.id, None)
            delivery.abandon()  # only matters when the turn is cancelled (shutdown)
        error = f"{type(result.error).__name__}: {result.error}"[:500] if result.error else None
        await self._store.settle_turn(
            turn.id,
            result.status,
            error=error,
            # A partial or failed answer still exists: the next question chains under it.
            answer_id=turn.assistant_message_id if result.reached else None,
        )
        if self._filing is not None and result.chat_id is not None:
            try:
                await self._filing.file(
                    conversation,
                    event,
                    result.chat_id,
                    # "" when the answer never reached the chat: a later one carries the link.
                    turn.assistant_message_id if result.reached else "",
                    result.placed,
                )
            except Exception as exc:  # filing is for admins; the answer already landed
                log.warning("could not file chat %s: %s", result.chat_id, exc)
        return result

    async def _settle(
        self,
        conversation: Conversation,
        turn: Turn,
        event: PlatformEvent,
        delivery: Delivery,
        result: TurnResult,
        history: dict[str, Any] | None,
    ) -> None:
        """Answer; every way it can end is one final reply call and a result status."""
        try:
            await delivery.start()
            await self._answer(conversation, turn, event, delivery, result, history)
            result.status = TurnStatus.DONE
        except ReplyStopped:
            result.status = TurnStatus.STOPPED
            await self._close_answer(result, turn.assistant_message_id)
            await delivery.end_stopped()
        except Exception as exc:  # every failure ends in one message and a failed turn
            result.status, result.error = TurnStatus.FAILED, exc
            if isinstance(exc, BridgeError):
                log.warning("turn for %s failed: %s", turn.platform_message_id, exc)
            else:
                log.exception("turn for %s failed unexpectedly", turn.platform_message_id)
            await self._close_answer(result, turn.assistant_message_id)
            await delivery.fail(user_message(exc))

    async def _answer(
        self,
        conversation: Conversation,
        turn: Turn,
        event: PlatformEvent,
        delivery: Delivery,
        result: TurnResult,
        history: dict[str, Any] | None,
    ) -> None:
        answer_id = turn.assistant_message_id
        cut_off = turn.status == TurnStatus.RUNNING  # a restart found it under way
        events = self._live.subscribe(answer_id) if self._live else None
        try:
            rules = self.rules(event.channel)
            # A new answer to the question as stored in the chat, beside its answers; a
            # question that never reached the chat (its turn failed first) is asked anew.
            stored = (history or {}).get("messages") or {}
            question = stored.get(turn.user_message_id) if event.regenerates else None
            regenerate = question is not None
            files: tuple[dict[str, Any], ...] = ()
            if question is not None:
                parent = question.get("parentId")
                parent_id, content = (str(parent) if parent else None), tree.message_text(question)
                files = tuple(question.get("files") or ())  # another answer reads them too
            elif event.edits:
                parent_id = await self._edited_parent(conversation, event, history)
                content = question_text(event)
            else:
                parent_id, content = self._parent_of(conversation, history), question_text(event)
            request = TurnRequest(
                chat_id=conversation.chat_id,
                parent_id=parent_id,
                user_message_id=turn.user_message_id,
                assistant_message_id=answer_id,
                content=content,
                model=conversation.model,
                fallback_model=self._fallback_model(conversation),
                session_id=(self._live.session_id if self._live else None) or str(uuid.uuid4()),
                title_generation=self._options.title_generation,
                knowledge_ids=rules.knowledge_ids,
                knowledge=await self._knowledge(rules.knowledge_ids),
                filter_ids=rules.filter_ids,
                features=dict(rules.features),
                system_prompt=rules.system_prompt,
                regenerate=regenerate,
                history=history,
                placement=await self._placement(conversation, event),
                files=files,
            )
            found = await self._where(request) if cut_off else _Found.ABSENT
            log.debug("turn %s: %s", turn.id, found.value)
            if found in (_Found.ABSENT, _Found.UNSTARTED) and event.files and not regenerate:
                platform = self._platforms[conversation.key.platform]
                files = await self.attachments.gather(
                    platform, conversation.id, event.files, conversation.model, delivery.note
                )
                request = replace(request, files=files)
            if found is _Found.ABSENT:

                async def created(chat_id: str, placed: Placement) -> None:
                    result.chat_id, result.placed = chat_id, placed
                    chat_known(chat_id)
                    await self._store.set_chat_id(conversation.id, chat_id)

                started = await self._start(request, created, result)
                chat_id = started.chat_id
                if conversation.chat_id != chat_id and result.chat_id != chat_id:
                    await created(chat_id, Placement())
                self._say_which_model(conversation, request.model, started.model, delivery)
            else:
                chat_id = request.chat_id or ""
            result.chat_id, result.reached = chat_id, True
            if found is _Found.UNSTARTED:
                started = await self._flow.restart(request)
                self._say_which_model(conversation, request.model, started.model, delivery)
            elif found is _Found.CUT:
                raise TurnInterrupted(f"answer {answer_id} was cut off by a restart")
            # A turn found under way after a restart is followed by reading the stored
            # chat: the live deltas before this moment are gone, and a finished answer
            # sends no more events at all.
            live = None if cut_off else events
            live_files = await self._follow(chat_id, answer_id, delivery, result, live)
        finally:
            if self._live:
                self._live.unsubscribe(answer_id)
        await self._deliver(chat_id, answer_id, delivery, result, rules, live_files)

    async def _start(
        self, request: TurnRequest, created: ChatCreated, result: TurnResult
    ) -> Started:
        """Start the turn. When the connection broke after the completion was sent, the
        server may have taken it: a turn found in its chat is followed, one missing is
        sent once more; the asker never hears "not reachable" for a blip the server
        survived."""
        try:
            return await self._flow.start(request, created)
        except OpenWebUIUnavailable as exc:
            chat_id = result.chat_id or request.chat_id
            if chat_id is None:
                raise  # a chat the server may have created is not known to us
            sent = replace(request, chat_id=chat_id, history=None)  # read it afresh
            found = await self._where(sent)
            log.info(
                "turn %s: the start's answer was lost (%s); %s",
                request.user_message_id,
                exc,
                found.value,
            )
            if found is _Found.ABSENT:
                return await self._flow.start(sent, created)
            if found is _Found.UNSTARTED:
                return await self._flow.restart(sent)
            return Started(chat_id, request.model)

    async def _knowledge(self, ids: Sequence[str]) -> tuple[dict[str, Any], ...]:
        """The channel's collections as the web UI sends them; one that cannot be read
        goes by its id alone (the answer still comes)."""
        found: list[dict[str, Any]] = []
        for knowledge_id in ids:
            try:
                found.append(await self._client.knowledge(knowledge_id))
            except BridgeError as exc:
                log.warning("knowledge %s not read: %s", knowledge_id, exc)
                found.append({"id": knowledge_id})
        return tuple(found)

    async def _placement(self, conversation: Conversation, event: PlatformEvent) -> Placement:
        """Where a new chat goes from its creation; filing's trouble never holds up an answer."""
        if self._filing is None or conversation.chat_id is not None:
            return Placement()
        try:
            return await self._filing.placement(conversation, event)
        except Exception as exc:  # the chat is filed after the turn instead
            log.warning("could not place the new chat of %s: %s", conversation.key.thread, exc)
            return Placement()

    async def _where(self, request: TurnRequest) -> _Found:
        if request.chat_id is None:
            return _Found.ABSENT
        chat = await self._client.get_chat(request.chat_id)
        message = tree.message_in(chat, request.assistant_message_id)
        if message is None:
            return _Found.ABSENT
        if message.get("error") or message.get("done") is True:
            return _Found.FINISHED
        if await self._client.running_tasks(request.chat_id):
            return _Found.UNDER_WAY
        if not tree.message_text(message):
            return _Found.UNSTARTED
        # Before 0.8.11 an answer is never marked done: text with no task behind it is
        # the whole answer.
        if not self._marks_done:
            return _Found.FINISHED
        # The task may have ended between the two reads, its answer marked done just
        # after: look once more before calling it cut off.
        await asyncio.sleep(_SETTLE)
        again = tree.message_in(
            await self._client.get_chat(request.chat_id), request.assistant_message_id
        )
        if again is not None and (again.get("error") or again.get("done") is True):
            return _Found.FINISHED
        return _Found.CUT

    async def _chat_history(self, conversation: Conversation) -> dict[str, Any] | None:
        """The conversation's chat history as stored now: None when it has no chat or the
        chat was deleted; empty when Open WebUI cannot say (the turn finds out itself)."""
        if conversation.chat_id is None:
            return None
        try:
            return tree.history_of(await self._client.get_chat(conversation.chat_id))
        except ChatGone:
            return None
        except BridgeError as exc:
            log.debug("chat %s not read before its turn: %s", conversation.chat_id, exc)
            return {}

    def _parent_of(self, conversation: Conversation, history: dict[str, Any] | None) -> str | None:
        """The message a new question hangs under: the thread's newest answer, or the
        chat's current message when that answer was deleted in the web UI."""
        if conversation.chat_id is None:
            return None
        messages = (history or {}).get("messages") or {}
        last = conversation.last_answer_id
        if last is not None and (last in messages or not messages):
            return last  # ``not messages``: the chat could not be read; trust the store
        if last is not None:
            log.info(
                "message %s that thread %s continued under was deleted in Open WebUI; "
                "continuing under the chat's current message",
                last,
                conversation.key.thread,
            )
        current = (history or {}).get("currentId")
        if current in messages:
            return str(current)
        return str(next(reversed(messages))) if messages else None

    async def _edited_parent(
        self, conversation: Conversation, event: PlatformEvent, history: dict[str, Any] | None
    ) -> str | None:
        """Where an edited question goes: beside the question it edits (under the same
        parent, as the web UI's edit puts it); a question that never reached the chat
        is asked as the thread's next one."""
        edited = await self._store.turn_by_id(event.edits)
        messages = (history or {}).get("messages") or {}
        question = messages.get(edited.user_message_id) if edited is not None else None
        if question is None:
            return self._parent_of(conversation, history)
        parent = question.get("parentId")
        return str(parent) if parent else None

    def _fallback_model(self, conversation: Conversation) -> str | None:
        """The model a thread's turn falls back to when Open WebUI refuses its own as
        unknown: the default, for threads under way. The thread keeps its model, so a
        model that was away for a moment (its backend restarting) answers again next
        time; a new thread asking for an unknown model is refused, not redirected."""
        default = self._options.default_model
        if conversation.chat_id is None or not default or default == conversation.model:
            return None
        return default

    def _say_which_model(
        self, conversation: Conversation, wanted: str, answering: str, delivery: Delivery
    ) -> None:
        """Tell the thread once while its model is away that another one answers."""
        if answering == wanted:
            self._told_fallback.discard(conversation.id)
            return
        if conversation.id not in self._told_fallback:
            self._told_fallback.add(conversation.id)
            delivery.note(f"_{wanted} is not available right now; {answering} answers instead._")

    async def _follow(
        self,
        chat_id: str,
        assistant_id: str,
        delivery: Delivery,
        result: TurnResult,
        events: asyncio.Queue[Event] | None,
    ) -> list[dict[str, Any]]:
        """Follow the answer to its end, unless the person stops it on the platform;
        returns the files the live events announced."""

        async def on_text(text: str) -> None:
            if result.first_text_at is None:
                result.first_text_at = time.monotonic()
            delivery.offer(text)

        follow = asyncio.create_task(self._follower.follow(chat_id, assistant_id, on_text, events))
        stopped = asyncio.create_task(delivery.stopped.wait())
        try:
            await asyncio.wait({follow, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (follow, stopped):
                task.cancel()
        if not follow.cancelled() and follow.done():
            result.increments = follow.result().increments
            return follow.result().files
        await asyncio.gather(follow, return_exceptions=True)
        await self._follower.stop(chat_id)
        raise ReplyStopped(f"answer {assistant_id} stopped on the platform")

    async def _deliver(
        self,
        chat_id: str,
        assistant_id: str,
        delivery: Delivery,
        result: TurnResult,
        rules: ChannelRules | None = None,
        live_files: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Finalise the stored answer, check the tree, and show the stored text (long
        code blocks as files, its sources below it), then its images and code files."""
        # As the web UI does, the answer keeps the images its live events announced.
        announced = [f for f in live_files if f.get("type") == "image"]
        chat = await self._flow.finalise(chat_id, assistant_id, files=announced)
        message = tree.message_in(chat, assistant_id) or {}
        stored = tree.message_text(message)
        result.tree_problems = tree.problems(tree.history_of(chat))
        if result.tree_problems:
            log.error("chat %s tree problems after turn: %s", chat_id, result.tree_problems)
        result.answer = stored
        limit = delivery.capabilities.max_message_length
        # What the thread shows of it (its reasoning made one line) is what may hold a
        # long code block; the reply renders the text once more, which changes nothing.
        visible = display.visible_text(stored, self._options.reasoning)
        shown, linked = images.unlink_relative_images(visible)
        code = snippets.extract(shown, snippets.threshold(delivery.capabilities))
        text = code.text
        if rules is None or rules.show_sources:
            text = sources.with_footer(
                text, sources.footer(message.get("sources"), max_chars=limit // 2)
            )
        fetched = await images.fetch(
            self._client, [*images.image_refs(message, live_files), *linked]
        )
        if fetched.missing:
            count = "1 image" if fetched.missing == 1 else f"{fetched.missing} images"
            delivery.note(f"_({count} of this answer could not be read from Open WebUI.)_")
        await delivery.finish(text)
        await delivery.attach([*fetched.files, *code.files])

    async def _close_answer(self, result: TurnResult, assistant_id: str) -> None:
        """Leave no answer half-open after a stop or failure, and learn whether it
        exists in the chat (0.6.x may hold a placeholder written before a failure)."""
        if result.chat_id is None:
            return
        try:
            chat = await self._flow.finalise(result.chat_id, assistant_id, cut_short=True)
        except Exception as exc:  # the user already gets the real error
            log.warning("could not close the answer in chat %s: %s", result.chat_id, exc)
            return
        result.reached = tree.message_in(chat, assistant_id) is not None


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


def event_of(turn: Turn, key: ThreadKey) -> PlatformEvent:
    if turn.event:
        return PlatformEvent.from_json(turn.event)
    # A turn recorded before events were stored: enough to reach its thread again.
    return replace(
        PlatformEvent(
            event_id=turn.platform_message_id,
            thread=key,
            message_id=turn.platform_message_id,
            author_id="",
            author_name="",
            text="",
        ),
        order=turn.sort_key,
    )
