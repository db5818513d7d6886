"""Reactions on the bridge's answers, applied: 👍/👎 become the reacting person's
rating in Open WebUI, ⏹ stops the answer under way, 🔁 asks for another answer.

A reaction is acknowledged at once and applied in the background, in the order
Slack delivered them (👍 then 👎 ends as 👎), except ⏹, which never waits behind
a rating. It counts only on a message that holds an answer of the bridge, from
a person (not a bot) who may ask in that conversation: the access rules that
judge questions judge reactions too, and a refused person's reaction is dropped
without a word. Only a refused 🔁 is explained, to the reacting person alone.
"""

from __future__ import annotations

import asyncio
import logging

from adapters.slack.chores import Chores
from adapters.slack.facts import Facts
from adapters.slack.inbound import SlackMessage
from adapters.slack.notices import Notices
from adapters.slack.places import Places
from adapters.slack.reactions import Action, Reaction
from bridge.errors import QuestionRefused
from bridge.events import ThreadKey
from bridge.openwebui.organise import Rater
from bridge.policy import judge
from bridge.reply import Intake

log = logging.getLogger(__name__)

PLATFORM = "slack"


class Reactions:
    def __init__(
        self,
        bridge: Intake,
        facts: Facts,
        places: Places,
        notices: Notices,
        chores: Chores,
    ) -> None:
        self._bridge = bridge
        self._facts = facts
        self._places = places
        self._notices = notices
        self._chores = chores
        # Taken first by each reaction's task, in arrival order: asyncio's lock wakes
        # its waiters first come, first served.
        self._in_order = asyncio.Lock()

    def take(self, reaction: Reaction) -> None:
        """Apply ``reaction`` in the background (the event is acknowledged now)."""
        what = f"reaction {reaction.name} on {reaction.ts}"
        if reaction.action is Action.STOP:
            self._chores.spawn(self._apply(reaction), what)
        else:
            self._chores.spawn(self._apply_in_order(reaction), what)

    async def _apply_in_order(self, reaction: Reaction) -> None:
        async with self._in_order:
            await self._apply(reaction)

    async def _apply(self, reaction: Reaction) -> None:
        key = await self._bridge.answer_thread(PLATFORM, reaction.ts)
        if key is None:
            return  # not an answer of the bridge
        if not await self._admitted(reaction):
            return
        action = reaction.action
        if action is Action.STOP:
            await self._stop(key, reaction)
        elif action is Action.REGENERATE:
            await self._regenerate(key, reaction)
        elif action is not None and action.vote:
            await self._rate(reaction, action.vote)

    async def _admitted(self, reaction: Reaction) -> bool:
        """The reacting person is a person who may ask here, in a channel the bot
        answers in."""
        if self._bridge.rules(reaction.channel).respond_to == "off":
            return False
        user = await self._facts.user(reaction.user)
        if user is not None and user.bot:
            return False
        direct = await self._places.direct(reaction.channel)
        as_message = SlackMessage(
            team=reaction.team,
            channel=reaction.channel,
            channel_type="im" if direct else "channel",
            user=reaction.user,
            text="",
            ts=reaction.ts,
            thread_ts=None,
            user_team=reaction.user_team,
            enterprise=reaction.enterprise,
        )
        access = self._bridge.access
        refusal = judge(access, await self._facts.asker(as_message, access))
        if refusal is not None:
            log.info(
                "reaction %s by %s in %s ignored: %s",
                reaction.name,
                reaction.user,
                reaction.channel,
                refusal.value,
            )
            return False
        return True

    async def _rate(self, reaction: Reaction, vote: int) -> None:
        rater = Rater(PLATFORM, reaction.user, await self._facts.name(reaction.user))
        await self._bridge.rate(PLATFORM, reaction.ts, rater, vote, removed=reaction.removed)

    async def _stop(self, key: ThreadKey, reaction: Reaction) -> None:
        # Only the answer under way stops (the core decides): ⏹ on an earlier answer of
        # the thread does not cut off the one being written now.
        if await self._bridge.stop_answer(PLATFORM, reaction.ts):
            log.info("answer in %s stopped by %s (reaction)", key.thread, reaction.user)

    async def _regenerate(self, key: ThreadKey, reaction: Reaction) -> None:
        try:
            await self._bridge.regenerate(PLATFORM, reaction.ts, reaction.event_id, reaction.user)
        except QuestionRefused as refused:
            log.info("regenerate in %s refused: %s", key.thread, refused.reason)
            if refused.notice:
                self._notices.show(
                    reaction.channel,
                    reaction.user,
                    refused.notice,
                    key.thread,
                    key=reaction.event_id,
                )
