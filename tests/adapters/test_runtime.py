"""The runtime's own chores: the delivery ledger is pruned at start and on a schedule."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters import runtime
from bridge.events import ThreadKey
from bridge.store import NewTurn
from storage import MEMORY, open_store


async def test_ledger_is_pruned_at_start_and_every_round(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "PRUNE_EVERY", 0.05)
    store = await open_store(MEMORY)
    key = ThreadKey("slack", "T1", "C1", "1.0")

    async def deliver(event_id: str) -> bool:
        turn = NewTurn(key, event_id, event_id, "", "{}", "m", f"u-{event_id}", f"a-{event_id}")
        return await store.enqueue_turn(turn) is not None

    try:
        assert await deliver("old")
        await store._conn.execute(  # a week and a bit ago
            "UPDATE processed_events SET received_at = ?", (time.time() - 8 * 86400,)
        )
        pruning = asyncio.create_task(runtime.prune_events(store, 7 * 86400))
        await asyncio.sleep(0.02)
        assert await deliver("recent")
        await asyncio.sleep(0.1)  # a later round keeps what is younger than the retention
        pruning.cancel()
        async with store._conn.execute("SELECT event_id FROM processed_events") as cur:
            assert [row[0] for row in await cur.fetchall()] == ["recent"]
    finally:
        await store.close()
