"""Reactions as ratings through the core (``Bridge.act``), against the fast fake
Open WebUI (its feedback endpoints behave as Open WebUI's ``routers/evaluations.py``):
what Admin → Evaluations lists after 👍, a change of mind, a reaction taken back,
and a restart in between (each person's rating is remembered in the bridge's
database). Each step is written at once (``write_ratings``), as if the person had
paused; bursts that settle are tests/bridge/openwebui/test_rating_settle.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.actions import Act, Action, Outcome
from bridge.openwebui.organise import Organiser, Rater
from bridge.store import TurnStatus
from tests.bridge.test_intake import RELEASES, BridgeMaker, Setup, _bridges, question, submit

pytestmark = pytest.mark.timeout(20)

ALICE = Rater("test", "u-alice", "Alice")
BOB = Rater("test", "u-bob", "Bob")
REPLY = "reply-q1"  # the platform message holding the answer


@pytest.fixture(params=[RELEASES[0], RELEASES[-1]])  # paged feedback lists (0.12) and not
async def make(request: pytest.FixtureRequest) -> AsyncIterator[BridgeMaker]:
    async with _bridges(request.param) as maker:
        yield maker


async def rate(
    s: Setup, rater: Rater, vote: int, *, removed: bool = False, message: str = REPLY
) -> Outcome:
    """``rater`` adds (or takes back) 👍 (1) / 👎 (-1) on ``message``, then pauses."""
    act = Act.UNRATE if removed else Act.RATE
    acted = await s.bridge.act(Action(act, "test", message, rater, None, vote=vote))
    await s.bridge.write_ratings()
    return acted.outcome


async def answered(s: Setup) -> str:
    """One answered question whose reply is platform message ``REPLY``; its answer id."""
    assert (await (await submit(s, question("q1")))).status is TurnStatus.DONE
    [turn] = await s.turns()
    await s.store.set_reply_ids(turn.id, [REPLY])
    return turn.assistant_message_id


async def test_a_reaction_taken_back_removes_the_rating(make: BridgeMaker) -> None:
    s = await make()
    answer = await answered(s)
    assert await rate(s, ALICE, 1) is Outcome.DONE
    assert s.fake.ratings(answer) == [("u-alice", 1)]

    assert await rate(s, ALICE, 1, removed=True) is Outcome.DONE
    assert s.fake.ratings(answer) == []
    assert s.fake.feedbacks == {}


async def test_thumbs_up_then_down_leaves_one_record_with_the_latest_vote(
    make: BridgeMaker,
) -> None:
    s = await make()
    answer = await answered(s)
    await rate(s, ALICE, 1)
    [first_id] = s.fake.feedbacks
    await rate(s, ALICE, -1)  # she changes her mind

    assert s.fake.ratings(answer) == [("u-alice", -1)]
    assert list(s.fake.feedbacks) == [first_id]  # the same record, updated
    record = s.fake.feedbacks[first_id]
    assert record["data"]["comment"] == "👎 from Alice on Test (u-alice)"
    # Taking back the 👍 she no longer holds changes nothing.
    await rate(s, ALICE, 1, removed=True)
    assert s.fake.ratings(answer) == [("u-alice", -1)]
    # Someone else's thumbs are their own record.
    await rate(s, BOB, 1)
    assert s.fake.ratings(answer) == [("u-alice", -1), ("u-bob", 1)]


async def test_a_rating_is_remembered_across_a_restart(make: BridgeMaker) -> None:
    old = await make()
    answer = await answered(old)
    await rate(old, ALICE, 1)
    await rate(old, BOB, -1)
    await old.bridge.drain(0)

    new = await make()  # the same database and Open WebUI, a new process
    # Her change of mind updates her record rather than adding a second one …
    await rate(new, ALICE, -1)
    assert new.fake.ratings(answer) == [("u-alice", -1), ("u-bob", -1)]
    assert len(new.fake.feedbacks) == 2
    # … and his reaction taken back after the restart removes his.
    await rate(new, BOB, -1, removed=True)
    assert new.fake.ratings(answer) == [("u-alice", -1)]


async def test_a_record_deleted_in_the_web_ui_is_written_again(make: BridgeMaker) -> None:
    s = await make()
    answer = await answered(s)
    await rate(s, ALICE, 1)
    s.fake.feedbacks.clear()  # an admin deleted it in Admin → Evaluations
    await rate(s, ALICE, -1)
    assert s.fake.ratings(answer) == [("u-alice", -1)]
    # Taken back: the new record goes, and nothing else is asked to go.
    await rate(s, ALICE, -1, removed=True)
    assert s.fake.feedbacks == {}


async def test_a_message_that_holds_no_answer_is_not_rated(make: BridgeMaker) -> None:
    s = await make()
    await answered(s)
    outcome = await rate(s, ALICE, 1, message="someone-elses-message")
    assert outcome is Outcome.NOT_AN_ANSWER
    assert s.fake.feedbacks == {}


async def test_a_persons_rating_is_found_among_more_than_a_page_of_records(
    make: BridgeMaker,
) -> None:
    s = await make()
    answer = await answered(s)
    raters = [Rater("test", f"u-{n:02}", f"Person {n}") for n in range(31)]  # a page is 30
    for rater in raters:
        s.fake.clock = lambda n=int(rater.user_id[2:]): 1_700_000_000.0 + n
        await rate(s, rater, 1)
    client = s.fake.client()
    await client.connect()
    try:
        organiser = Organiser(client)
        assert len(await organiser.feedbacks()) == 31
        found = await organiser.find_rating(answer, raters[0])  # the oldest: on page 2
        assert found is not None and found.rater == raters[0] and found.vote == 1
    finally:
        await client.aclose()
