"""Short notices only the asker sees (``chat.postEphemeral``): why a question is not
answered, or that its attachments were not read.

Posted in the background so the event's acknowledgement never waits on Slack, and
at most once per message (or reaction): Slack delivers a channel mention twice
(``message`` and ``app_mention``) and retries deliveries, and the core does not
remember refused questions. A notice that cannot be shown is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.facts import FAILED, describe
from adapters.slack.inbound import SlackMessage

log = logging.getLogger(__name__)

REMEMBERED = 2000  # messages whose notice is remembered (duplicates come within minutes)
CLOSE_WAIT = 2.0  # seconds ``close`` lets notices still being posted finish


class Notices:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._shown: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, message: SlackMessage, text: str, *, in_thread: bool = False) -> None:
        """Show ``text`` to ``message``'s author where they wrote it, once; ``in_thread``:
        in the thread the message opens or continues (where its answer goes)."""
        thread = message.thread if in_thread else message.thread_ts
        self.show(message.channel, message.user, text, thread, key=message.delivery_id)

    def show(self, channel: str, user: str, text: str, thread_ts: str | None, *, key: str) -> None:
        """Show ``text`` to ``user`` in ``channel`` (``thread_ts``: in that thread), once
        per ``key`` (what prompted it: a message, a reaction)."""
        remembered = (key, text)
        if remembered in self._shown:
            return
        self._shown[remembered] = None
        while len(self._shown) > REMEMBERED:
            self._shown.popitem(last=False)
        task = asyncio.ensure_future(self._post(channel, user, text, thread_ts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=CLOSE_WAIT)
        for task in late:
            task.cancel()

    async def _post(self, channel: str, user: str, text: str, thread: str | None) -> None:
        try:
            await self._client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=_escape(text),
                thread_ts=thread,  # None (left out): the channel itself
            )
        except FAILED as exc:
            log.info("cannot show a notice to %s in %s: %s", user, channel, describe(exc))


def _escape(text: str) -> str:
    # The three characters Slack's text markup reserves.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
