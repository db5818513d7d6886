"""A person toggling 👍/👎 costs one feedback write once they settle (bridge.openwebui.ratings)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from bridge.openwebui.organise import Organiser, Rater, Rating
from bridge.openwebui.ratings import Ratings
from bridge.store import RatingRecord, Store

ANN = Rater("slack", "U1", "Ann")
BOB = Rater("slack", "U2", "Bob")


class Feedbacks:
    """Open WebUI's feedback records, as far as ratings use them."""

    def __init__(self) -> None:
        self.records: dict[str, int] = {}  # feedback id → vote
        self.writes = 0

    async def set_rating(self, rating: Rating, feedback_id: str | None = None) -> Any:
        self.writes += 1
        record = feedback_id or f"fb-{len(self.records) + 1}"
        self.records[record] = rating.vote
        return type("Feedback", (), {"id": record})()

    async def clear_rating(self, feedback_id: str) -> bool:
        self.writes += 1
        return self.records.pop(feedback_id, None) is not None


class Kept:
    """The store's ratings table."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], RatingRecord] = {}

    async def get_rating(self, turn_id: int, rater: str) -> RatingRecord | None:
        return self.rows.get((turn_id, rater))

    async def save_rating(self, rating: RatingRecord) -> None:
        self.rows[(rating.turn_id, rating.rater)] = rating

    async def delete_rating(self, turn_id: int, rater: str) -> None:
        self.rows.pop((turn_id, rater), None)


def ratings(settle: float = 0.05) -> tuple[Ratings, Feedbacks, Kept]:
    feedbacks, kept = Feedbacks(), Kept()
    return Ratings(cast(Organiser, feedbacks), cast(Store, kept), settle), feedbacks, kept


async def react(r: Ratings, vote: int, rater: Rater = ANN, *, removed: bool = False) -> None:
    await r.react(1, "chat", "answer", rater, vote, removed=removed)


async def test_a_burst_of_toggles_is_one_write_of_where_it_ended() -> None:
    r, feedbacks, kept = ratings()
    for vote, removed in [(1, False), (1, True), (-1, False), (-1, True), (1, False)]:
        await react(r, vote, removed=removed)
    await r.settled()
    assert feedbacks.writes == 1
    assert list(feedbacks.records.values()) == [1]
    assert kept.rows[(1, "slack:U1")].vote == 1


async def test_toggling_back_to_where_it_started_writes_nothing() -> None:
    r, feedbacks, _ = ratings()
    await react(r, 1)
    await r.settled()
    await react(r, 1, removed=True)
    await react(r, 1)
    await r.settled()
    assert feedbacks.writes == 1  # the first rating only


async def test_each_person_settles_apart_and_taking_back_removes() -> None:
    r, feedbacks, kept = ratings()
    await react(r, 1)
    await react(r, -1, BOB)
    await r.settled()
    assert sorted(feedbacks.records.values()) == [-1, 1]
    await react(r, 1, removed=True)
    await react(r, 1, BOB, removed=True)  # Bob's 👍 was never on: his 👎 stays
    await r.settled()
    assert list(feedbacks.records.values()) == [-1]
    assert list(kept.rows) == [(1, "slack:U2")]


async def test_shutdown_writes_what_has_not_settled() -> None:
    r, feedbacks, _ = ratings(settle=60)
    await react(r, -1)
    await asyncio.wait_for(r.flush(), 1)
    assert list(feedbacks.records.values()) == [-1]
