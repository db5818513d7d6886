"""``owui-bridge chat`` as a user runs it: the real command, input piped in,
answers on stdout, the conversation kept in one Open WebUI chat per thread."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests import treecheck
from tests.contract.bridge_fixtures import fetch_chat, history_of
from tests.e2e.conftest import COMMAND, Cli, CliResult, signed_in, with_api_key
from tests.harness.env import clean_env
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI, free_port

THREAD_LINE = re.compile(r"\[bridge\] thread (\S+) \(resume it with --thread \1\)")
NEW_THREAD_LINE = re.compile(r"\[bridge\] new thread (\S+)")


def thread_named(result: CliResult) -> str:
    match = THREAD_LINE.search(result.stderr)
    assert match, result.stderr
    return match.group(1)


def chat_ids(db: Path) -> dict[str, str]:
    """thread name -> Open WebUI chat id, as the bridge stored them."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT thread, chat_id FROM conversations WHERE platform = 'console'"
        ).fetchall()
    return dict(rows)


def questions_and_answers(server: RunningOpenWebUI, chat_id: str) -> list[tuple[str, str]]:
    """The chat's current branch as (question, answer) pairs; checks it is one chain."""
    history = history_of(fetch_chat(server, chat_id))
    assert treecheck.problems(history) == []
    chain = treecheck.branch(history)
    assert len(chain) == len(history["messages"]), "the chat has side branches"
    assert [m["role"] for m in chain] == ["user", "assistant"] * (len(chain) // 2)
    return [
        (user["content"], treecheck.answer_text(answer))
        for user, answer in zip(chain[::2], chain[1::2], strict=True)
    ]


def test_piped_conversation_then_resume_the_thread(
    openwebui: RunningOpenWebUI, cli: Cli, tmp_path: Path
) -> None:
    first = cli("chat", env=signed_in(openwebui), stdin="What is a bridge?\nAnd a tunnel?\n")

    assert first.returncode == 0, first.output
    answers = [expected_reply("What is a bridge?"), expected_reply("And a tunnel?")]
    assert first.stdout.splitlines() == answers  # both answers, in order, nothing else
    thread = thread_named(first)
    assert "Traceback" not in first.output
    assert openwebui.admin_password not in first.output

    second = cli("chat", "--thread", thread, env=signed_in(openwebui), stdin="One more?\n")

    assert second.returncode == 0, second.output
    assert second.stdout.splitlines() == [expected_reply("One more?")]
    assert thread_named(second) == thread
    threads = chat_ids(tmp_path / "b.db")
    assert list(threads) == [thread]
    assert questions_and_answers(openwebui, threads[thread]) == [
        ("What is a bridge?", answers[0]),
        ("And a tunnel?", answers[1]),
        ("One more?", expected_reply("One more?")),
    ]


def test_new_command_starts_a_second_chat(
    openwebui: RunningOpenWebUI, cli: Cli, tmp_path: Path
) -> None:
    result = cli("chat", env=with_api_key(openwebui), stdin="Before new\n/new\nAfter new\n")

    assert result.returncode == 0, result.output
    assert result.stdout.splitlines() == [
        expected_reply("Before new"),
        expected_reply("After new"),
    ]
    first_thread = thread_named(result)
    new = NEW_THREAD_LINE.search(result.stderr)
    assert new, result.stderr
    second_thread = new.group(1)
    assert second_thread != first_thread

    threads = chat_ids(tmp_path / "b.db")
    assert set(threads) == {first_thread, second_thread}
    assert threads[first_thread] != threads[second_thread]
    assert questions_and_answers(openwebui, threads[first_thread]) == [
        ("Before new", expected_reply("Before new"))
    ]
    assert questions_and_answers(openwebui, threads[second_thread]) == [
        ("After new", expected_reply("After new"))
    ]


def test_unreachable_server_fails_fast_without_traceback(cli: Cli) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = cli(
        "chat",
        env={
            "OPENWEBUI_URL": nobody,
            "OPENWEBUI_API_KEY": "sk-unused",
            "OPENWEBUI_MODEL": "fake-model",
        },
        stdin="hello?\n",
        timeout=60,
    )

    assert result.returncode != 0
    assert result.seconds < 20, f"took {result.seconds:.1f}s to give up"
    assert "Traceback" not in result.output
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "not reachable" in message, message
    assert len(message.splitlines()) <= 3, message


def test_secrets_are_never_printed(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli(
        "chat", env=with_api_key(openwebui, BRIDGE_LOG_LEVEL="DEBUG"), stdin="Is my key safe?\n"
    )

    assert result.returncode == 0, result.output
    assert result.stdout.splitlines() == [expected_reply("Is my key safe?")]
    assert "DEBUG" in result.stderr  # the debug log really was on
    assert openwebui.api_key not in result.output


def test_wrong_password_says_sign_in_failed(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    env = signed_in(openwebui, "not-the-password")
    result = cli("chat", env=env, stdin="hello?\n")

    assert result.returncode == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert "not-the-password" not in result.output
    assert "could not sign in" in result.stderr, result.stderr


def test_ctrl_c_at_the_prompt_exits_at_once(openwebui: RunningOpenWebUI, tmp_path: Path) -> None:
    """The terminal waits for a line; Ctrl-C (SIGINT) ends the program without Enter."""
    env = clean_env() | {"BRIDGE_DATABASE": str(tmp_path / "b.db")} | with_api_key(openwebui)
    proc = subprocess.Popen(
        [*COMMAND, "chat"],
        stdin=subprocess.PIPE,  # kept open: the prompt waits for a line that never comes
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        text=True,
    )
    try:
        assert proc.stderr is not None
        while not THREAD_LINE.search(proc.stderr.readline()):  # the chat has started
            assert proc.poll() is None, "the chat did not start"
        time.sleep(0.5)  # now reading the terminal
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert code == 130


def test_json_logs_name_the_turn_and_never_hold_the_conversation(
    openwebui: RunningOpenWebUI, cli: Cli
) -> None:
    question = "Where do owls sleep at noon?"
    env = with_api_key(openwebui, BRIDGE_LOG_FORMAT="json", BRIDGE_LOG_LEVEL="INFO")
    result = cli("chat", env=env, stdin=f"{question}\n")

    assert result.returncode == 0, result.output
    assert result.stdout.splitlines() == [expected_reply(question)]
    logged = [line for line in result.stderr.splitlines() if not line.startswith("[bridge]")]
    records = [json.loads(line) for line in logged]  # every log line is one JSON object
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert any(r.get("turn") and r.get("platform") == "console" for r in records)
    words = {"owls", expected_reply(question)[:20]}
    assert not [r for r in records if any(w in json.dumps(r) for w in words)]
    assert openwebui.api_key not in result.stderr
