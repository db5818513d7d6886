"""One answer in a Discord channel (a thread or a DM), as a small state machine.

::

    typing ──first text──▶ editing ──finish / fail──▶ done
                  (stored ids after a restart start in editing)

* **typing**: the typing indicator, renewed every ``TYPING_RENEW`` seconds
  (Discord shows it for 10), until the first text goes out. A new answer that
  replaces an earlier one (``replacing``, a regenerate) types beside the old
  answer's messages, then edits them: no new post unless it needs more parts.
* **editing**: the answer split at paragraph/code-fence boundaries into
  messages of at most 2,000 characters (``bridge.split``); each part is posted
  once and edited as it grows; a part a person deleted is posted again (with
  the parts after it, so the order holds), with a nonce of its own: Discord
  answers a nonce it saw in the past few minutes with that nonce's message, the
  deleted one included; surplus parts are deleted. Each time the list of message
  ids changes it is saved, so a restart edits them in place.

Where the thread could not be opened, the reply is in the channel and each of
its messages replies to the question (``reply_to``).

Pacing comes from the core (``Capabilities.min_update_interval``) and from the
process's call budget (``adapters.discord.budget``): an intermediate update, and
a typing indicator, go only when the budget has room, else they are skipped (the
core offers a newer text later); an update while another call is still under way
is skipped too. The first text, the final text and a failure notice wait for the
budget, and go again through failures on the way (``final_retry_delays``) and
through Discord's 429s (for ``final_patience`` seconds); ``finish`` lands the
final text or raises ``PlatformFailed`` / ``PlatformRateLimited``. Every message
goes out with mentions disabled.

``attach`` (after ``finish``) puts the answer's files on its last message, beside
the attachments it has: what fits within ten files and the guild's upload limit
(``adapters.discord.files.fit``; a 413 from Discord takes one file off and tries
again), and one short line under the answer naming the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp
import discord

from adapters.discord import files as discord_files
from adapters.discord.budget import Skipped, skippable
from bridge.errors import PlatformFailed, PlatformRateLimited
from bridge.parts import NoticePlace, Part, notice_place
from bridge.reply import OutFile, SaveMessageIds
from bridge.split import split_message

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
NONCE_LIMIT = 25  # characters Discord keeps of a message nonce
TYPING_RENEW = 8.0  # seconds; Discord's typing indicator lasts 10
EMPTY_ANSWER = "*(empty answer)*"
WARNING = "⚠️"
# Waits before retrying a final call that failed on the way (network, Discord 5xx).
FINAL_RETRY_DELAYS = (1.0, 3.0, 8.0)
# How long a call that must land (final text, failure notice) goes on through 429s,
# beyond the five tries discord.py makes itself.
FINAL_PATIENCE = 180.0
RATE_LIMIT_WAIT = 1.0  # seconds, when a 429 does not say how long
NO_MENTIONS = discord.AllowedMentions.none()
UNKNOWN_MESSAGE = 10008  # Discord's JSON error code: the message does not exist (any more)
# Discord's JSON error code: no more edits of a message over an hour old, for now.
OLD_MESSAGE_EDITS_LIMITED = 30046
REQUEST_TOO_LARGE = 40005  # Discord's JSON error code: the upload is over the size limit


def nonce_base(message_id: str) -> str:
    """What a reply's part nonces start with: the question's message id, or a digest of
    a longer id (a regenerate's) so each part's place still fits in the nonce."""
    if len(message_id) <= NONCE_LIMIT - 4:
        return message_id
    return hashlib.blake2s(message_id.encode(), digest_size=10).hexdigest()


class MessageGone(Exception):
    """The message was deleted (by a person, or never existed)."""


class MessageFrozen(MessageGone):
    """The message cannot be edited any more (over an hour old, e.g. after a long
    outage or a 🔁 on an old answer): like a deleted one, it gives way to new ones."""


class CallFailed(PlatformFailed):
    """A call whose fate is unknown (network, Discord 5xx): worth another try."""


class RateLimited(PlatformRateLimited):
    """Discord still answered 429 after discord.py's own waits (or one too long for it)."""

    def __init__(self, what: str, retry_after: float) -> None:
        super().__init__(f"{what}: rate limited, retry after {retry_after:.1f} s")
        self.retry_after = retry_after


T = TypeVar("T")


class Channel(Protocol):
    """The Discord calls a reply makes; errors come out as ``MessageGone``,
    ``CallFailed``, ``PlatformFailed`` or ``PlatformRateLimited``."""

    async def typing(self) -> None: ...

    async def send(self, text: str, nonce: str | None = None) -> str:
        """Post ``text``; a ``nonce`` Discord saw recently reuses that message (which then
        shows ``text`` too)."""
        ...

    async def edit(self, message_id: str, text: str) -> None: ...

    async def delete(self, message_id: str) -> None: ...

    async def attach(self, message_id: str, files: Sequence[OutFile]) -> list[OutFile]:
        """Add what fits of ``files`` to the message's attachments (keeping those it has);
        the files left out."""
        ...


class UploadTooLarge(PlatformFailed):
    """Discord refused an upload as over the size limit (413, code 40005)."""


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """discord.py and network errors as the bridge's own, where they enter."""
    try:
        yield
    except discord.NotFound as exc:
        if exc.code == UNKNOWN_MESSAGE:
            raise MessageGone(what) from exc
        raise PlatformFailed(f"{what}: not found ({exc.code}: {exc.text})") from exc
    except discord.RateLimited as exc:  # a wait over the client's max_ratelimit_timeout
        raise RateLimited(what, exc.retry_after) from exc
    except discord.DiscordServerError as exc:
        raise CallFailed(f"{what}: Discord answered {exc.status}") from exc
    except discord.HTTPException as exc:
        if exc.code == OLD_MESSAGE_EDITS_LIMITED:
            raise MessageFrozen(what) from exc
        if exc.code == REQUEST_TOO_LARGE:
            raise UploadTooLarge(f"{what}: over the upload size limit") from exc
        if exc.status == 429:  # after discord.py's five tries
            raise RateLimited(what, _retry_after(exc)) from exc
        raise PlatformFailed(f"{what}: {exc.status} ({exc.code}: {exc.text})") from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise CallFailed(f"{what}: {type(exc).__name__}") from exc


def _retry_after(exc: discord.HTTPException) -> float:
    try:
        return max(float(exc.response.headers.get("Retry-After", RATE_LIMIT_WAIT)), 0.0)
    except (AttributeError, TypeError, ValueError):
        return RATE_LIMIT_WAIT


class DiscordChannel:
    """``Channel`` on discord.py's REST client: no fetch, ids only. With ``reply_to``
    every message posted replies to that message (pinging no one)."""

    def __init__(self, channel: discord.PartialMessageable, *, reply_to: str | None = None) -> None:
        self._channel = channel
        self._reference = (
            channel.get_partial_message(int(reply_to)).to_reference(fail_if_not_exists=False)
            if reply_to
            else None
        )

    async def typing(self) -> None:
        with translated(f"typing in {self._channel.id}"):
            await self._channel.typing()

    async def send(self, text: str, nonce: str | None = None) -> str:
        with translated(f"posting in {self._channel.id}"):
            # discord.py sends a nonce with enforce_nonce: Discord returns the message it
            # already made for that nonce (a post whose answer a crash or timeout lost).
            message = await self._post(text, nonce)
            if message.content != text:  # that nonce's earlier message: bring it up to date
                try:
                    await message.edit(content=text, allowed_mentions=NO_MENTIONS)
                except discord.NotFound as exc:
                    if exc.code != UNKNOWN_MESSAGE:
                        raise
                    # The nonce's message was deleted since: a new one, without the nonce.
                    message = await self._post(text, None)
        return str(message.id)

    async def _post(self, text: str, nonce: str | None) -> discord.Message:
        given: dict[str, Any] = {}  # only what is set: discord.py sends what it is given
        if nonce is not None:
            given["nonce"] = nonce  # discord.py adds enforce_nonce
        if self._reference is not None:
            given.update(reference=self._reference, mention_author=False)
        return await self._channel.send(text, allowed_mentions=NO_MENTIONS, **given)

    async def edit(self, message_id: str, text: str) -> None:
        with translated(f"editing {message_id} in {self._channel.id}"):
            await self._channel.get_partial_message(int(message_id)).edit(
                content=text, allowed_mentions=NO_MENTIONS
            )

    async def delete(self, message_id: str) -> None:
        with translated(f"deleting {message_id} in {self._channel.id}"):
            await self._channel.get_partial_message(int(message_id)).delete()

    async def attach(self, message_id: str, files: Sequence[OutFile]) -> list[OutFile]:
        what = f"attaching files to {message_id} in {self._channel.id}"
        with translated(what):
            # An edit's attachments are all the message keeps: its own come first.
            message = await self._channel.fetch_message(int(message_id))
        kept = list(message.attachments)
        # A retry after an edit whose answer was lost: what it added is there already.
        there = {(a.filename, a.size) for a in kept}
        files = [f for f in files if (f.name, len(f.data)) not in there]
        guild = self._channel.guild
        limit = (
            guild.filesize_limit
            if guild is not None
            else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
        )
        chosen = discord_files.fit(files, discord_files.MAX_FILES - len(kept), limit)
        go, left = list(chosen.go), list(chosen.left)
        while go:
            uploads = [
                discord.File(io.BytesIO(f.data), f.name, description=f.title or None) for f in go
            ]
            try:
                with translated(what):
                    await message.edit(attachments=[*kept, *uploads])
                return left
            except UploadTooLarge:
                # The limit is lower than the guild says (or counts the whole request).
                left.insert(0, go.pop())
        return left


# -- states ---------------------------------------------------------------------------


@dataclass
class _Typing:
    task: asyncio.Task[None] | None = None
    parts: list[Part] = field(default_factory=list)  # an earlier answer's, to be edited


@dataclass
class _Editing:
    parts: list[Part] = field(default_factory=list)


@dataclass
class _Done:
    parts: list[Part] = field(default_factory=list)


_State = _Typing | _Editing | _Done


class DiscordReply:
    """``bridge.reply.ReplyHandle`` for one answer in one Discord channel."""

    def __init__(
        self,
        channel: Channel,
        message_ids: Sequence[str] = (),
        save_ids: SaveMessageIds | None = None,
        *,
        limit: int = MESSAGE_LIMIT,
        typing_renew: float = TYPING_RENEW,
        final_retry_delays: Sequence[float] = FINAL_RETRY_DELAYS,
        final_patience: float = FINAL_PATIENCE,
        nonce_base: str = "",
        replacing: bool = False,
    ) -> None:
        self._channel = channel
        # Each part's post carries a nonce made of the question's id and the part's
        # place, so the same part posted again after a restart is the same message.
        self._nonce_base = nonce_base
        # A place whose message was deleted posts again under a nonce of its own (the
        # deleted message's), which Discord cannot answer with the deleted message.
        self._renonce: dict[int, str] = {}
        self._save_ids = save_ids
        self._limit = limit
        self._typing_renew = typing_renew
        self._retry_delays = tuple(final_retry_delays)
        self._patience = final_patience
        # Until the answer's first text is shown its update waits for the budget, as a
        # final text does; later ones are skipped when there is no room.
        self._first_shown = False
        self._lock = asyncio.Lock()  # one Discord exchange at a time per reply
        # A regenerate's reply: until its first words the messages hold the answer it
        # replaces, which a failure must leave as it is.
        self._replacing = replacing
        parts = [Part(i, None) for i in message_ids]
        self._state: _State = _Editing(parts) if parts and not replacing else _Typing(parts=parts)

    @property
    def message_ids(self) -> list[str]:
        """The messages the reply occupies now, in order."""
        return [part.id for part in self._state.parts]

    # -- ReplyHandle ----------------------------------------------------------------

    async def start(self) -> None:
        state = self._state
        if isinstance(state, _Typing) and state.task is None:
            # The first indicator before start returns (the answer may come at once);
            # renewals in the background until the first text.
            if await self._type():
                state.task = asyncio.create_task(self._keep_typing())

    async def update(self, text: str) -> bool:
        if self._lock.locked() or isinstance(self._state, _Done):
            return False  # an edit is still on its way: the core offers a newer text later
        async with self._lock:
            try:
                if self._first_shown:
                    with skippable():
                        await self._show(text)
                else:
                    await self._show(text)
            except Skipped:
                return False  # no room in the budget: the core offers a newer text later
            except (MessageGone, PlatformFailed, PlatformRateLimited) as exc:
                # A lost intermediate update is harmless: a later one or the final carries it.
                log.warning("discord update failed: %s", exc)
                return False
            self._first_shown = True
            return True

    async def finish(self, text: str) -> None:
        async with self._lock:
            if isinstance(self._state, _Done):
                return
            await self._landing(lambda: self._show(text), "final text")
            self._state = _Done(self._editing().parts)

    async def attach(self, files: Sequence[OutFile]) -> None:
        """``files`` on the answer's last message; a line under it names those that did
        not fit. Raises ``PlatformFailed`` when Discord refuses them."""
        if not files:
            return
        async with self._lock:
            parts = self._state.parts
            if not parts:
                raise PlatformFailed("no answer message to attach files to")
            last = parts[-1].id
            try:
                left = await self._landing(lambda: self._channel.attach(last, files), "files")
            except MessageGone as exc:  # a person deleted the answer's last message
                raise PlatformFailed(f"no message {last} to attach files to") from exc
            if left:
                line = discord_files.not_attached(left, self._limit)
                await self._landing(lambda: self._channel.send(line, self._nonce("f")), "note")

    async def fail(self, message: str) -> None:
        async with self._lock:
            self._stop_typing()
            parts = self._state.parts
            warning = f"{WARNING} {message}"
            place = notice_place(parts, warning, self._limit, replacing=self._replacing)
            if place.drop:
                try:
                    await self._delete_from(parts, len(parts) - len(place.drop))
                except PlatformFailed as exc:
                    log.warning("cannot delete the rest of a failed answer: %s", exc)
            parts = [*place.keep, *([place.edit] if place.edit else [])]
            self._state = _Done(parts)
            await self._show_warning(parts, place, warning)

    async def _landing(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call()`` until it lands: again after a failure on the way (after each of
        ``final_retry_delays``) and after Discord's 429s (for ``final_patience`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._patience
        delays = iter(self._retry_delays)
        while True:
            try:
                return await call()
            except CallFailed as exc:
                delay = next(delays, None)
                if delay is None:
                    raise
                log.warning("discord %s failed (%s); retrying in %.0f s", what, exc, delay)
            except PlatformRateLimited as exc:
                delay = getattr(exc, "retry_after", RATE_LIMIT_WAIT)
                if loop.time() + delay > deadline:
                    raise
                log.warning("discord %s rate limited (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)

    # -- showing text -----------------------------------------------------------------

    async def _show(self, text: str) -> None:
        chunks = split_message(text if text.strip() else EMPTY_ANSWER, self._limit)
        state = self._editing()
        parts = state.parts
        index = 0
        while index < len(chunks):
            chunk = chunks[index]
            if index >= len(parts):
                parts.append(Part(await self._channel.send(chunk, self._nonce(index)), chunk))
                await self._save(parts)
            elif parts[index].shown != chunk:
                try:
                    await self._channel.edit(parts[index].id, chunk)
                except MessageGone as exc:
                    # Deleted by a person, or too old to edit: this part and the ones after
                    # it go out again (removed where they still stand), so the thread
                    # reads in order.
                    log.info(
                        "message %s cannot be edited (%s); posting the answer from there",
                        parts[index].id,
                        type(exc).__name__,
                    )
                    await self._delete_from(parts, index)
                    continue
                parts[index].shown = chunk
            index += 1
        if len(parts) > len(chunks):
            # An earlier, longer attempt's parts. The answer itself is shown: a part that
            # cannot be deleted is left (and forgotten) rather than failing the answer.
            try:
                await self._delete_from(parts, len(chunks))
            except (PlatformFailed, PlatformRateLimited) as exc:
                log.warning("cannot delete a surplus part of an answer: %s", exc)
                del parts[len(chunks) :]
                await self._save(parts)

    def _nonce(self, place: int | str) -> str | None:
        if not self._nonce_base:
            return None
        if isinstance(place, int) and place in self._renonce:
            return self._renonce[place]
        return f"{self._nonce_base}.{place}"[:NONCE_LIMIT]

    def _editing(self) -> _Editing:
        state = self._state
        if isinstance(state, _Editing):
            return state
        self._stop_typing()
        editing = _Editing(state.parts)
        self._state = editing
        return editing

    async def _delete_from(self, parts: list[Part], index: int) -> None:
        while len(parts) > index:
            with contextlib.suppress(MessageGone):
                await self._channel.delete(parts[-1].id)
            gone = parts.pop()
            # That place's next post must not come back as this (deleted) message.
            self._renonce[len(parts)] = nonce_base(f"{self._nonce_base}.{len(parts)}~{gone.id}")
            await self._save(parts)

    async def _show_warning(self, parts: list[Part], place: NoticePlace, warning: str) -> None:
        """The one failure notice, where ``bridge.parts`` puts it."""
        edit = place.edit
        if edit is not None:
            try:
                await self._landing(lambda: self._channel.edit(edit.id, place.text), "notice")
                edit.shown = place.text
                return
            except (MessageGone, PlatformFailed, PlatformRateLimited) as exc:
                log.warning("cannot edit %s for the failure notice: %s", edit.id, exc)
        try:
            message_id = await self._landing(
                lambda: self._channel.send(warning, self._nonce("w")), "notice"
            )
        except MessageGone as exc:  # cannot happen on a post; keeps the contract's types
            raise PlatformFailed(str(exc)) from exc
        parts.append(Part(message_id, warning))
        await self._save(parts)

    # -- typing -------------------------------------------------------------------------

    async def _keep_typing(self) -> None:
        while True:
            await asyncio.sleep(self._typing_renew)
            if not await self._type():
                return

    async def _type(self) -> bool:
        """One typing indicator, if the budget has room now; False when Discord refuses it
        (not worth retrying)."""
        try:
            with skippable():
                await self._channel.typing()
        except Skipped:
            return True  # no room now: the next renewal tries again
        except (MessageGone, PlatformFailed, PlatformRateLimited) as exc:
            log.debug("no typing indicator: %s", exc)
            return isinstance(exc, CallFailed)
        return True

    def _stop_typing(self) -> None:
        state = self._state
        if isinstance(state, _Typing) and state.task is not None:
            state.task.cancel()
            state.task = None

    async def _save(self, parts: list[Part]) -> None:
        if self._save_ids is not None:
            await self._save_ids([part.id for part in parts])
