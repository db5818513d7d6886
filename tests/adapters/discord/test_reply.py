"""One answer in a Discord channel, against an in-memory channel that records what a
person would see (the real discord.py client is covered against the fake server)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace

import discord
import pytest

from adapters.discord.reply import (
    EMPTY_ANSWER,
    NONCE_LIMIT,
    CallFailed,
    DiscordReply,
    MessageFrozen,
    MessageGone,
    nonce_base,
    translated,
)
from bridge.delivery import stopped_text
from bridge.errors import PlatformFailed, PlatformRateLimited
from bridge.split import join_split


class Channel:
    """Messages in order, what each shows, and every call made."""

    def __init__(self) -> None:
        self.messages: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.typings = 0
        self.next_id = 1000
        self.fail_next: list[Exception] = []  # raised by the next calls, in order
        self.gate: asyncio.Event | None = None  # holds edits until set
        self.nonces: dict[str, str] = {}

    def _fault(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    async def typing(self) -> None:
        self.typings += 1

    async def send(self, text: str, nonce: str | None = None) -> str:
        self.calls.append(("send", text))
        self._fault()
        if nonce is not None and self.nonces.get(nonce) in self.messages:
            self.messages[self.nonces[nonce]] = text  # reused, as DiscordChannel does
            return self.nonces[nonce]
        self.next_id += 1
        self.messages[str(self.next_id)] = text
        if nonce is not None:
            self.nonces[nonce] = str(self.next_id)
        return str(self.next_id)

    async def edit(self, message_id: str, text: str) -> None:
        self.calls.append(("edit", message_id))
        if self.gate is not None:
            await self.gate.wait()
        self._fault()
        if message_id not in self.messages:
            raise MessageGone(message_id)
        self.messages[message_id] = text

    async def delete(self, message_id: str) -> None:
        self.calls.append(("delete", message_id))
        self._fault()
        if self.messages.pop(message_id, None) is None:
            raise MessageGone(message_id)

    @property
    def shown(self) -> list[str]:
        return list(self.messages.values())


class Saved:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)


def reply(channel: Channel, saved: Saved, ids: Sequence[str] = ()) -> DiscordReply:
    return DiscordReply(channel, ids, saved, typing_renew=0.01, final_retry_delays=(0.0, 0.0))


LONG = "\n\n".join(
    f"Paragraph {i}: " + "words " * 60 + ("\n```python\n" + "x = 1\n" * 40 + "```" if i % 3 else "")
    for i in range(20)
)


async def test_typing_until_the_first_text_then_one_message_edited() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.start()
    await asyncio.sleep(0.05)
    assert channel.typings >= 2  # renewed
    assert await handle.update("Hel")
    typed = channel.typings
    assert await handle.update("Hello")
    await handle.finish("Hello, world")
    await asyncio.sleep(0.03)
    assert channel.typings == typed  # stopped at the first text
    assert channel.shown == ["Hello, world"]
    assert [kind for kind, _ in channel.calls] == ["send", "edit", "edit"]
    assert saved.ids == handle.message_ids == list(channel.messages)


async def test_a_long_answer_continues_in_more_messages_that_add_up() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.start()
    for end in range(500, len(LONG), 1500):
        await handle.update(LONG[:end])
    await handle.finish(LONG)
    assert len(channel.shown) >= 4
    assert all(len(text) <= 2000 for text in channel.shown)
    assert join_split(channel.shown) == LONG
    assert saved.ids == list(channel.messages)


async def test_a_restart_edits_the_stored_messages_and_deletes_the_surplus() -> None:
    channel, saved = Channel(), Saved()
    first = reply(channel, saved)
    await first.update(LONG)  # the earlier process showed a longer, different text
    stored = list(saved.ids)
    assert len(stored) >= 4
    again = reply(channel, saved, stored)
    await again.start()
    await again.finish("A short answer")
    assert channel.shown == ["A short answer"]
    assert saved.ids == stored[:1]  # the first message, edited in place
    assert not [c for c in channel.calls[len(stored) :] if c[0] == "send"]


async def test_a_message_deleted_by_a_person_is_posted_again_in_order() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.update(LONG[:3000])
    first, second = saved.ids
    del channel.messages[first]  # a person deleted the first part
    final = "Intro. " + LONG[:3500]  # the first part changes, so it is edited
    await handle.finish(final)
    assert join_split(channel.shown) == final
    assert second not in channel.messages  # re-posted after the first, not before it
    assert saved.ids == list(channel.messages)


async def test_empty_answer_still_shows_something() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.finish("  ")
    assert channel.shown == [EMPTY_ANSWER]


async def test_an_update_while_an_edit_is_under_way_is_skipped() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.update("one")
    channel.gate = asyncio.Event()
    slow = asyncio.create_task(handle.update("one two"))
    await asyncio.sleep(0)
    assert await handle.update("one two three") is False
    channel.gate.set()
    assert await slow
    await handle.finish("one two three four")
    assert channel.shown == ["one two three four"]


async def test_a_failed_update_is_harmless_and_the_final_text_lands() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.update("a")
    channel.fail_next = [PlatformRateLimited("429")]
    assert await handle.update("ab") is False
    channel.fail_next = [CallFailed("503"), CallFailed("reset")]
    await handle.finish("abc")  # retried through transient failures
    assert channel.shown == ["abc"]


async def test_finish_raises_when_discord_refuses() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.update("a")
    channel.fail_next = [PlatformFailed("403 missing access")]
    with pytest.raises(PlatformFailed):
        await handle.finish("abc")
    channel.fail_next = [CallFailed("x"), CallFailed("x"), CallFailed("x")]
    handle = reply(channel, saved)
    with pytest.raises(PlatformFailed):
        await handle.finish("abc")


async def test_fail_keeps_the_shown_text_above_the_warning() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.start()
    await handle.update("Half an answer")
    await handle.fail("The model could not answer this message.")
    assert channel.shown == ["Half an answer\n\n⚠️ The model could not answer this message."]


async def test_fail_without_a_message_posts_one_short_message() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.start()
    await handle.fail("Open WebUI is not reachable right now.")
    assert channel.shown == ["⚠️ Open WebUI is not reachable right now."]
    assert saved.ids == list(channel.messages)


async def test_fail_posts_below_a_full_message() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.update("x" * 1990)
    await handle.fail("Stopped.")
    assert channel.shown == ["x" * 1990, "⚠️ Stopped."]


async def test_fail_after_a_restart_says_it_in_the_first_message() -> None:
    channel, saved = Channel(), Saved()
    await reply(channel, saved).update(LONG)
    handle = reply(channel, saved, list(saved.ids))
    await handle.fail("The bridge restarted before this answer was complete.")
    assert channel.shown == ["⚠️ The bridge restarted before this answer was complete."]
    assert saved.ids == list(channel.messages)


async def test_fail_posts_when_its_message_is_gone() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.update("partial")
    channel.messages.clear()
    await handle.fail("Stopped.")
    assert channel.shown == ["⚠️ Stopped."]


async def test_a_post_whose_id_was_never_saved_is_found_again_not_doubled() -> None:
    channel = Channel()
    # The first attempt posts, and the process dies before the message id is saved.
    first = DiscordReply(channel, (), None, nonce_base="1234")
    assert await first.update("Hello")
    # The restarted turn knows no message: its post carries the same nonce.
    saved = Saved()
    again = DiscordReply(channel, (), saved, nonce_base="1234")
    await again.finish("Hello, world")
    assert channel.shown == ["Hello, world"]
    assert saved.ids == list(channel.messages)


# -- stopped and regenerated answers ----------------------------------------------------


async def test_a_stopped_answer_keeps_what_was_shown_marked_stopped() -> None:
    channel, saved = Channel(), Saved()
    handle = reply(channel, saved)
    await handle.start()
    await handle.update("Half an")
    await handle.finish(stopped_text("Half an"))  # what the core's Delivery sends
    assert channel.shown == ["Half an\n\n_(stopped)_"]
    assert [kind for kind, _ in channel.calls] == ["send", "edit"]  # the same message


def replacing(channel: Channel, saved: Saved, ids: Sequence[str]) -> DiscordReply:
    return DiscordReply(
        channel,
        ids,
        saved,
        typing_renew=0.01,
        final_retry_delays=(0.0,),
        nonce_base=nonce_base("500~reaction:300:600:7:🔁:1700000000000"),
        replacing=True,
    )


async def test_a_regenerated_answer_types_then_edits_the_old_answer_in_place() -> None:
    channel, saved = Channel(), Saved()
    await reply(channel, saved).finish("The first answer")
    old = list(saved.ids)
    sends = len([c for c in channel.calls if c[0] == "send"])
    handle = replacing(channel, saved, old)
    await handle.start()
    await asyncio.sleep(0.05)
    assert channel.typings >= 2  # beside the old answer, until the new text comes
    assert channel.shown == ["The first answer"]
    await handle.update("The sec")
    typed = channel.typings
    await handle.finish("The second answer")
    await asyncio.sleep(0.03)
    assert channel.typings == typed
    assert channel.shown == ["The second answer"]
    assert saved.ids == old == handle.message_ids
    assert len([c for c in channel.calls if c[0] == "send"]) == sends  # no new post


async def test_a_regenerate_failing_before_its_first_words_leaves_the_old_answer() -> None:
    channel, saved = Channel(), Saved()
    await reply(channel, saved).finish(LONG)
    old = list(saved.ids)
    before = list(channel.shown)
    handle = replacing(channel, saved, old)
    await handle.start()
    await handle.fail("The model could not answer.")
    # Every part of the old answer as it was, the failure a message of its own below.
    assert channel.shown[: len(before)] == before
    assert len(channel.shown) == len(before) + 1
    assert channel.shown[-1].endswith("The model could not answer.")
    assert old[0] not in saved.ids and len(saved.ids) == 1


async def test_a_shorter_regenerated_answer_deletes_the_old_extra_parts() -> None:
    channel, saved = Channel(), Saved()
    await reply(channel, saved).finish(LONG)
    old = list(saved.ids)
    assert len(old) >= 4
    handle = replacing(channel, saved, old)
    await handle.start()
    await handle.finish("Short, this time.")
    assert channel.shown == ["Short, this time."]
    assert saved.ids == old[:1] == list(channel.messages)


async def test_a_longer_regenerated_answer_adds_parts_after_the_old_ones() -> None:
    channel, saved = Channel(), Saved()
    await reply(channel, saved).finish("Short at first.")
    old = list(saved.ids)
    handle = replacing(channel, saved, old)
    await handle.start()
    for end in range(500, len(LONG), 1500):
        await handle.update(LONG[:end])
    await handle.finish(LONG)
    assert join_split(channel.shown) == LONG
    assert len(channel.shown) >= 4  # every part its own message: the nonces differ
    assert saved.ids[0] == old[0] and saved.ids == list(channel.messages)


def test_a_long_message_id_still_leaves_room_for_the_parts_place() -> None:
    assert nonce_base("1234567890123456789") == "1234567890123456789"
    long = nonce_base("1234567890123456789~reaction:300:600:7:🔁:1700000000000")
    assert len(f"{long}.99") <= NONCE_LIMIT
    assert long != nonce_base("1234567890123456789~reaction:300:600:7:🔁:1700000000001")


async def test_an_answer_whose_old_message_cannot_be_edited_goes_on_in_new_ones() -> None:
    channel, saved = Channel(), Saved()
    await reply(channel, saved).finish("The first attempt, cut off")
    old = list(saved.ids)
    # A restart after a long outage: Discord refuses edits of the hour-old message.
    channel.fail_next = [MessageFrozen(old[0])]
    handle = reply(channel, saved, old)
    await handle.finish("The whole answer")
    assert channel.shown == ["The whole answer"]
    assert saved.ids != old and len(saved.ids) == 1


def test_discord_refusing_edits_of_old_messages_reads_as_a_frozen_message() -> None:
    response = SimpleNamespace(status=400, reason="Bad Request")
    refusal = discord.HTTPException(
        response,
        {
            "code": 30046,
            "message": "Maximum number of edits to messages older than 1 hour reached.",
        },
    )
    with pytest.raises(MessageFrozen), translated("editing 1 in 2"):
        raise refusal
