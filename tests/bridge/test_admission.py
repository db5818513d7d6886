"""What the core takes and refuses before anything is stored: the access policy,
empty and over-long questions, the per-user rate limit, full threads, and how
often a refused person is told. Over an in-memory store and a fake Open WebUI."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from bridge.admission import Admission
from bridge.errors import QuestionRefused
from bridge.events import PlatformEvent, ThreadKey
from bridge.policy import AccessPolicy, Asker, Limits, Refusal, UserKind
from tests.bridge.test_intake import BridgeMaker, Setup, make_bridge, question, s, until

__all__ = ["make_bridge", "s"]  # fixtures shared with the core tests

pytestmark = pytest.mark.timeout(20)

MEMBER = Asker(workspace="w", channel="c", user="u1")


async def refused(s: Setup, event: PlatformEvent, asker: Asker | None = MEMBER) -> QuestionRefused:
    with pytest.raises(QuestionRefused) as caught:
        await s.bridge.submit(event, asker)
    return caught.value


async def nothing_stored(s: Setup, thread: str = "t1") -> None:
    assert await s.store.get_conversation(ThreadKey("test", "w", "c", thread)) is None
    assert s.fake.completions == [] and s.fake.chats == {}


async def test_a_refused_asker_leaves_no_trace(
    make_bridge: BridgeMaker, caplog: pytest.LogCaptureFixture
) -> None:
    s = await make_bridge(access=AccessPolicy(denied_users=frozenset({"u1"})))
    caplog.set_level(logging.INFO, "bridge.intake")
    error = await refused(s, question("what is the secret plan", message_id="m1"))
    assert error.reason == Refusal.DENIED_USER.value
    assert error.notice == "Sorry, you don't have access to this assistant."
    await nothing_stored(s)
    # Logged with the reason, never the text.
    assert "user denied" in caplog.text and "secret plan" not in caplog.text
    # The same delivery later (e.g. after the operator lifts the ban) is a new question.
    assert s.platform.replies == {}


async def test_a_refused_question_does_not_count_as_a_delivery(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(access=AccessPolicy(denied_users=frozenset({"u2"})))
    await refused(s, question("q1"), replace(MEMBER, user="u2"))
    await nothing_stored(s)
    # A copy of it (a platform retry) is no second refusal; the next question is taken.
    assert await s.bridge.submit(question("q1"), replace(MEMBER, user="u2")) is None
    pending = await s.bridge.submit(question("q2"), MEMBER)
    assert pending is not None
    assert (await pending).status.value == "done"


async def test_a_question_refused_as_unverified_is_judged_again_when_it_comes_again(
    make_bridge: BridgeMaker,
) -> None:
    s = await make_bridge(access=AccessPolicy(allowed_roles=frozenset({"staff"})))
    error = await refused(s, question("q1"), replace(MEMBER, roles_known=False))
    assert error.reason == Refusal.UNVERIFIED.value
    # The look-up failed, not the person: Slack's retry is judged again, and taken.
    pending = await s.bridge.submit(question("q1"), replace(MEMBER, roles=frozenset({"staff"})))
    assert pending is not None and (await pending).status.value == "done"


async def test_each_message_is_judged_by_its_own_author(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(access=AccessPolicy(denied_users=frozenset({"u9"})))
    first = await s.bridge.submit(question("opened by an allowed person"), MEMBER)
    assert first is not None and (await first).status.value == "done"
    await refused(s, question("follow-up by a denied person"), replace(MEMBER, user="u9"))
    turns = await s.turns()
    assert [t.platform_message_id for t in turns] == ["opened by an allowed person"]
    assert len(s.fake.completions) == 1


async def test_unknown_workspace_is_silent(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(access=AccessPolicy(allowed_workspaces=frozenset({"w2"})))
    error = await refused(s, question("hello"))
    assert (error.reason, error.notice) == (Refusal.WORKSPACE.value, None)
    await nothing_stored(s)


async def test_an_empty_question_gets_a_hint(s: Setup) -> None:
    empty = await refused(s, question("", message_id="m1", event_id="e1"))
    assert empty.notice is not None and "same message as the mention" in empty.notice
    await nothing_stored(s)


async def test_an_over_long_question_is_refused_with_the_limit(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(limits=Limits(max_question_chars=32000))
    error = await refused(s, question("x" * 40000))
    assert error.notice == (
        "Your message is 40,000 characters long; I can take up to 32,000."
        " Please shorten it and ask again."
    )
    await nothing_stored(s)
    taken = await s.bridge.submit(question("y" * 32000), MEMBER)
    assert taken is not None


async def test_the_console_has_no_asker_but_keeps_the_bounds(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(access=AccessPolicy(allowed_users=frozenset({"someone-else"})))
    pending = await s.bridge.submit(question("local question"))  # no asker: policy skipped
    assert pending is not None
    await refused(s, question("z" * 40000), None)


async def test_a_full_thread_tells_the_asker_to_wait(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(limits=Limits(max_queued_per_thread=5))
    s.fake.hold()
    results = []
    for n in range(5):
        results.append(await s.bridge.submit(question(f"q{n}"), MEMBER))
    notices = [(await refused(s, question(f"q{n}"))).notice for n in (5, 6)]
    assert (
        notices
        == [
            "I answer one question at a time, and 5 are already waiting in this thread."
            " Please ask again once they're answered."
        ]
        * 2
    )
    # A duplicate of a waiting question is still just a duplicate, not "busy".
    assert await s.bridge.submit(question("q3"), MEMBER) is None
    # Other threads are not affected.
    s.fake.auto()
    other = await s.bridge.submit(question("elsewhere", thread="t2"), MEMBER)
    assert other is not None
    (await s.fake.next_held()).finish()  # the rest are answered at once (auto)
    done = [await r for r in results if r is not None]
    assert [r.status.value for r in done] == ["done"] * 5
    turns = await s.turns()
    assert [t.platform_message_id for t in turns] == [f"q{n}" for n in range(5)]
    # Room again once the thread is answered.
    assert await s.bridge.submit(question("q7"), MEMBER) is not None


async def test_a_busy_refusal_leaves_a_new_thread_unmapped(make_bridge: BridgeMaker) -> None:
    # limit 1 and a brand-new thread: the conversation row created inside the
    # refused transaction is rolled back with it.
    s = await make_bridge(limits=Limits(max_queued_per_thread=1))
    s.fake.hold()
    assert await s.bridge.submit(question("q0"), MEMBER) is not None
    await refused(s, question("q1"))
    assert len(await s.turns()) == 1
    (await s.fake.next_held()).finish()


async def test_the_rate_limit_counts_taken_questions_per_user(make_bridge: BridgeMaker) -> None:
    s = await make_bridge(limits=Limits(user_rate_limit=3))
    for n in range(3):
        assert await s.bridge.submit(question(f"q{n}", thread=f"t{n}"), MEMBER) is not None
    first = await refused(s, question("q3", thread="t3"))
    second = await refused(s, question("q4", thread="t4"))
    assert first.notice == "You've asked 3 questions in the last minute. Please wait a moment."
    assert second.notice is None  # told once per minute
    other = replace(MEMBER, user="u2")
    event = replace(question("q5", thread="t5"), author_id="u2")
    assert await s.bridge.submit(event, other) is not None
    await until(lambda: len(s.platform.finished) == 4)


def test_rate_limit_window_slides() -> None:
    now = [0.0]
    admission = Admission(AccessPolicy(), Limits(user_rate_limit=2), clock=lambda: now[0])
    event = question("q")
    for _ in range(2):
        assert admission.check(event, MEMBER).refusal is None
        admission.taken(event)
        now[0] += 10
    assert admission.check(event, MEMBER).refusal is Refusal.RATE
    now[0] = 60.5  # the first question left the minute
    assert admission.check(event, MEMBER).refusal is None


def test_access_notices_once_an_hour_per_person_or_never() -> None:
    now = [0.0]
    policy = AccessPolicy(allow_guests=False)
    guest = replace(MEMBER, kind=UserKind.GUEST)
    admission = Admission(policy, Limits(), clock=lambda: now[0])
    event = question("q")
    notices = []
    for t in (0, 10, 3599, 3601):
        now[0] = t
        notices.append(admission.check(event, guest).notice)
    assert notices == [
        "Sorry, this assistant is not available to guests.",
        None,
        None,
        "Sorry, this assistant is not available to guests.",
    ]
    silent = Admission(policy, Limits(denied_notice=False), clock=lambda: now[0])
    assert silent.check(event, guest) == silent.check(event, guest)
    assert silent.check(event, guest).notice is None
    # A look-up that failed is not a "no": it is said every time.
    unknown = replace(MEMBER, kind=UserKind.UNKNOWN)
    assert admission.check(event, unknown).notice == admission.check(event, unknown).notice
    assert admission.check(event, unknown).notice is not None
