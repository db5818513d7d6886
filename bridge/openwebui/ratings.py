"""Reactions on answers as ratings in Open WebUI: one feedback record per person
per answer (everyone shares the bridge's one account, so the person is in the
record), the latest reaction wins, taking it back removes it."""

from __future__ import annotations

import asyncio
import logging

from bridge.openwebui.organise import Organiser, Rater, Rating
from bridge.store import RatingRecord, Store

log = logging.getLogger(__name__)


class Ratings:
    def __init__(self, organiser: Organiser, store: Store) -> None:
        self._organiser = organiser
        self._store = store
        self._lock = asyncio.Lock()  # one change at a time: the latest reaction wins

    async def react(
        self, platform: str, message_id: str, rater: Rater, vote: int, *, removed: bool = False
    ) -> bool:
        """``vote`` 1 (👍) or -1 (👎) added, or taken back (``removed``: the rating goes
        if it is still that vote), on the answer in platform message ``message_id``.
        False when that message holds no answer of the bridge."""
        turn = await self._store.turn_by_reply(platform, message_id)
        if turn is None:
            return False
        conversation = await self._store.conversation_by_id(turn.conversation_id)
        if conversation is None or conversation.chat_id is None:
            return False
        who = f"{rater.platform}:{rater.user_id}"
        async with self._lock:
            known = await self._store.get_rating(turn.id, who)
            if removed:
                if known is not None and known.vote == vote:
                    await self._organiser.clear_rating(known.feedback_id)
                    await self._store.delete_rating(turn.id, who)
                return True
            if known is not None and known.vote == vote:
                return True
            rating = Rating(
                conversation.chat_id, turn.assistant_message_id, 1 if vote > 0 else -1, rater
            )
            feedback = await self._organiser.set_rating(
                rating, known.feedback_id if known is not None else None
            )
            await self._store.save_rating(RatingRecord(turn.id, who, feedback.id, rating.vote))
        log.info("rating %+d by %s on answer %s", rating.vote, who, turn.assistant_message_id)
        return True
