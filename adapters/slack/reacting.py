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
from adapters.slack.reactions import Reaction
from bridge.actions import Action, Reacted, act_of
from bridge.openwebui.organise import Rater
from bridge.policy import Asker
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
        if reaction.action is Reacted.STOP:
            self._chores.spawn(self._apply(reaction), what)
        else:
            self._chores.spawn(self._apply_in_order(reaction), what)

    async def _apply_in_order(self, reaction: Reaction) -> None:
        async with self._in_order:
            await self._apply(reaction)

    async def _apply(self, reaction: Reaction) -> None:
        acting = act_of(reaction.action, not reaction.removed) if reaction.action else None
        if acting is None:
            return
        user = await self._facts.user(reaction.user)
        if user is not None and user.bot:
            return  # an app's reaction is not a person's
        act, vote = acting
        acted = await self._bridge.act(
            Action(
                act=act,
                platform=PLATFORM,
                message_id=reaction.ts,
                person=Rater(PLATFORM, reaction.user, await self._facts.name(reaction.user)),
                asker=await self._asker(reaction),
                event_id=reaction.event_id,
                vote=vote,
            )
        )
        if acted.notice and acted.thread:  # a refused 🔁, told to the reacting person alone
            self._notices.show(
                reaction.channel,
                reaction.user,
                acted.notice,
                acted.thread.thread,
                key=reaction.event_id,
            )

    async def _asker(self, reaction: Reaction) -> Asker:
        """The facts the access rules judge, as for a message by the reacting person."""
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
        return await self._facts.asker(as_message, self._bridge.access)
