"""CPU the bridge spends showing one long answer streamed token by token.

Feeds Open WebUI 0.6.x-style live events (the whole text so far in each event, with
a finished reasoning block and code blocks, as the server sends them) through the
follower's event handling and a ``Delivery`` to a reply handle that takes every
update at once, and prints the process CPU seconds spent.

Usage:  .venv/bin/python -m bench.stream [--chars 100000] [--token 4]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bridge import display
from bridge.delivery import Delivery
from bridge.openwebui.follow import AnswerState
from bridge.reply import Capabilities


class Handle:
    def __init__(self) -> None:
        self.updates = 0

    async def start(self) -> None:
        pass

    async def update(self, text: str) -> bool:
        self.updates += 1
        await asyncio.sleep(0.001)  # a platform call takes a moment
        return True

    async def finish(self, text: str) -> None:
        pass

    async def fail(self, message: str) -> None:
        pass


def answer(chars: int) -> str:
    reasoning = '<details type="reasoning" done="true" duration="2">\n<summary>Thought</summary>\n'
    reasoning += "> thinking it over\n</details>\n"
    body = ""
    n = 0
    while len(body) < chars:
        n += 1
        body += f"Paragraph {n}: " + "word " * 40 + "\n\n```python\nx = 1\n```\n\n"
    return reasoning + body[:chars]


async def run(chars: int, token: int) -> tuple[float, int, int]:
    text = answer(chars)
    handle = Handle()
    delivery = Delivery(
        handle,
        Capabilities(max_message_length=4000, min_update_interval=0.0),
        lambda t: display.visible_text(t, "summary"),
    )
    state = AnswerState()
    await delivery.start()
    started = time.process_time()
    events = 0
    for end in range(token, len(text) + token, token):
        state.apply_event({"type": "chat:completion", "data": {"content": text[:end]}})
        delivery.offer(state.text)
        events += 1
        if events % 64 == 0:
            await asyncio.sleep(0)  # the event loop runs the pusher between events
    await delivery.finish(state.text)
    return time.process_time() - started, events, handle.updates


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream")
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--token", type=int, default=4, help="characters per event")
    args = parser.parse_args()
    cpu, events, updates = asyncio.run(run(args.chars, args.token))
    print(
        f"stream: {args.chars} chars in {events} events -> {updates} platform updates, "
        f"CPU {cpu:.2f} s"
    )


if __name__ == "__main__":
    main()
