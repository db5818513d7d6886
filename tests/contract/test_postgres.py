"""The bridge on PostgreSQL (``BRIDGE_DATABASE=postgresql://…``) against a real Open
WebUI: it answers, keeps the turn in PostgreSQL, and a restart finishes a cut-off answer
in place, as on SQLite. A database it cannot open is named without its password."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from bridge.config import ConfigError
from tests.contract.bridge_fixtures import (
    BridgeFactory,
    RecordingReply,
    ask,
    event,
    platform_of,
    submit,
)
from tests.harness.model_server import expected_reply
from tests.harness.postgres import PostgresServer


async def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_the_bridge_answers_and_resumes_on_postgresql(
    make_bridge: BridgeFactory, postgres_url: str
) -> None:
    async with make_bridge(bridge_database=postgres_url) as runtime:
        reply, result = await ask(runtime, "hello from postgres", "pg-thread")
        assert reply.final == expected_reply("hello from postgres")
        assert await runtime.store.writable()  # what /readyz asks

        question = "slow answer [[words=60]] [[delay=0.1]]"
        asked = event(question, "pg-thread")
        first = RecordingReply()
        pending = await submit(runtime, asked, first)
        while not first.updates:  # the answer is under way…
            await asyncio.sleep(0.05)
        await runtime.bridge.drain(0)  # …when the process dies
        assert not pending.done()

    assert await rows(postgres_url, "SELECT status FROM turns ORDER BY id") == [
        ("done",),
        ("running",),
    ]
    assert await rows(postgres_url, "SELECT thread, chat_id FROM conversations") == [
        ("pg-thread", result.chat_id)
    ]

    async with make_bridge(bridge_database=postgres_url) as runtime:
        platform = platform_of(runtime)
        assert await runtime.bridge.resume("test") == 1
        while not runtime.bridge.idle:
            await asyncio.sleep(0.05)
        assert platform.replies[asked.message_id].final == expected_reply(question)
        assert platform.given_ids[asked.message_id] == (f"msg-{asked.message_id}",)
    assert await rows(postgres_url, "SELECT status FROM turns ORDER BY id") == [
        ("done",),
        ("done",),
    ]


@pytest.mark.parametrize("where", ["closed-port", "missing-database"])
async def test_a_database_that_cannot_be_opened_is_named_without_its_password(
    make_bridge: BridgeFactory,
    postgres_server: PostgresServer,
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "Pg-Pass-w0rd-never-shown"
    port = 1 if where == "closed-port" else postgres_server.port
    url = f"postgresql://bridge:{password}@127.0.0.1:{port}/no_such_db"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as refused:
        async with make_bridge(bridge_database=url):
            pass
    message = str(refused.value)
    assert password not in message and password not in caplog.text
    assert f"postgresql://bridge:***@127.0.0.1:{port}/no_such_db" in message
