"""Reactions on answers as ratings in Open WebUI: one feedback record per person
per answer (everyone shares the bridge's one account, so the person is in the
record), the latest reaction wins, taking it back removes it.

A person toggling 👍/👎 sends a burst of reactions; each person's rating of an
answer settles for ``settle`` seconds after their last reaction and is then
written once (or not at all when it ends where it started)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Literal

from bridge.openwebui.organise import Organiser, Rater, Rating
from bridge.store import RatingRecord, Store

log = logging.getLogger(__name__)

SETTLE = 2.0  # seconds without a reaction before a person's rating is written


@dataclass
class _Wanted:
    """A person's rating of one answer as their reactions leave it, not yet written."""

    turn_id: int
    chat_id: str
    answer_id: str
    rater: Rater
    vote: Literal[1, -1] | None  # None: no rating
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # another reaction came
    now: bool = False  # write without waiting (shutdown)
    task: asyncio.Task[None] | None = None


class Ratings:
    def __init__(self, organiser: Organiser, store: Store, settle: float = SETTLE) -> None:
        self._organiser = organiser
        self._store = store
        self._settle = settle
        self._lock = asyncio.Lock()  # one write at a time; a reaction reads after it
        self._wanted: dict[tuple[int, str], _Wanted] = {}

    async def react(
        self,
        turn_id: int,
        chat_id: str,
        answer_id: str,
        rater: Rater,
        vote: int,
        *,
        removed: bool = False,
    ) -> None:
        """``vote`` 1 (👍) or -1 (👎) added, or taken back (``removed``: the rating goes
        if it is still that vote), on the answer ``answer_id`` of turn ``turn_id``."""
        key = (turn_id, _who(rater))
        wanted = self._wanted.get(key)
        if wanted is None:
            async with self._lock:  # after a write under way, so this reads its result
                known = await self._store.get_rating(turn_id, key[1])
            wanted = self._wanted.setdefault(
                key,
                _Wanted(turn_id, chat_id, answer_id, rater, _vote(known.vote) if known else None),
            )
        this = _vote(vote)
        if not removed:
            wanted.vote = this
        elif wanted.vote == this:
            wanted.vote = None
        wanted.rater = rater if rater.name else wanted.rater  # taking back needs no name
        wanted.changed.set()
        if wanted.task is None:
            wanted.task = asyncio.create_task(self._write_when_settled(key, wanted))

    async def settled(self) -> None:
        """Wait until every rating reacted so far is written."""
        while self._wanted:
            tasks = [w.task for w in self._wanted.values() if w.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def flush(self) -> None:
        """Write every pending rating now (shutdown: nothing a person did is lost)."""
        for wanted in self._wanted.values():
            wanted.now = True
            wanted.changed.set()
        await self.settled()

    async def _write_when_settled(self, key: tuple[int, str], wanted: _Wanted) -> None:
        try:
            while not wanted.now:
                wanted.changed.clear()
                try:
                    await asyncio.wait_for(wanted.changed.wait(), self._settle)
                except TimeoutError:
                    break  # settled
            async with self._lock:
                del self._wanted[key]
                await self._write(key[1], wanted)
        except Exception as exc:  # a rating is for admins; the thread is unaffected
            log.warning("could not save the rating on answer %s: %s", wanted.answer_id, exc)
        finally:
            self._wanted.pop(key, None)

    async def _write(self, who: str, wanted: _Wanted) -> None:
        known = await self._store.get_rating(wanted.turn_id, who)
        if wanted.vote is None:
            if known is not None:
                await self._organiser.clear_rating(known.feedback_id)
                await self._store.delete_rating(wanted.turn_id, who)
                log.info("rating by %s on answer %s removed", who, wanted.answer_id)
            return
        if known is not None and known.vote == wanted.vote:
            return
        rating = Rating(wanted.chat_id, wanted.answer_id, wanted.vote, wanted.rater)
        feedback = await self._organiser.set_rating(
            rating, known.feedback_id if known is not None else None
        )
        await self._store.save_rating(RatingRecord(wanted.turn_id, who, feedback.id, wanted.vote))
        log.info("rating %+d by %s on answer %s", wanted.vote, who, wanted.answer_id)


def _vote(vote: int) -> Literal[1, -1]:
    return 1 if vote > 0 else -1


def _who(rater: Rater) -> str:
    return f"{rater.platform}:{rater.user_id}"
