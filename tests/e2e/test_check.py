"""``owui-bridge check`` against real Open WebUI servers: one line per check,
exit 0 when all pass, 1 when one fails, 2 when the settings themselves are wrong."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, CliResult, signed_in, with_api_key
from tests.harness.openwebui import RunningOpenWebUI


def lines_starting(result: CliResult, prefix: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(prefix)]


def expected_flow(server: RunningOpenWebUI) -> str:
    """The turn flow each release needs (protocol notes, "Releases between")."""
    if server.release >= (0, 9):
        return "server-managed turns"
    if server.release >= (0, 6, 41):
        return "completion names the question"
    return "client-written history (0.6.15 to 0.6.40)"


@pytest.mark.every_release
def test_check_with_api_key(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli("check", env=with_api_key(openwebui))

    assert result.returncode == 0, result.output
    assert lines_starting(result, "FAIL") == []
    assert f"version {openwebui.version}" in result.stdout
    [flow] = lines_starting(result, "ok   turn flow")
    assert expected_flow(openwebui) in flow
    assert "api key" in result.stdout
    assert "polling" in result.stdout
    # Polling shows an answer as it is written only where the server stores it so.
    complete_only = "shows each answer only once it is complete" in result.stdout
    assert complete_only is (openwebui.release < (0, 11, 1)), result.stdout
    assert "fake-model is available" in result.stdout
    assert lines_starting(result, "ok   files: files sent with questions can be uploaded")
    assert openwebui.api_key not in result.output


# What the bridge uses of Open WebUI, the files API left out.
EVERYTHING_BUT_FILES = ",".join(
    (
        "/api/models", "/api/v1/models", "/api/v1/chats", "/api/chat", "/api/tasks",
        "/api/v1/tasks", "/api/v1/knowledge", "/api/v1/functions", "/api/v1/folders",
        "/api/v1/auths", "/api/v1/users", "/api/v1/evaluations",
    )
)  # fmt: skip


@pytest.fixture
def keys_limited_to(openwebui: RunningOpenWebUI) -> Iterator[Callable[[str], None]]:
    """Turn on Open WebUI's API key endpoint restrictions (the setting's name changed
    in 0.12: ``API_KEY…`` became ``API_KEYS…``); put back as it was afterwards."""
    path = "/api/v1/auths/admin/config"
    with openwebui.client() as http:
        original = http.get(path).raise_for_status().json()

        def limit(endpoints: str) -> None:
            config = dict(original)
            for switch in (
                "ENABLE_API_KEY_ENDPOINT_RESTRICTIONS",
                "ENABLE_API_KEYS_ENDPOINT_RESTRICTIONS",
            ):
                if switch in config:
                    config[switch] = True
            for allowed in ("API_KEY_ALLOWED_ENDPOINTS", "API_KEYS_ALLOWED_ENDPOINTS"):
                if allowed in config:
                    config[allowed] = endpoints
            http.post(path, json=config).raise_for_status()

        try:
            yield limit
        finally:
            http.post(path, json=original).raise_for_status()


def test_check_says_when_the_api_key_may_not_upload_files(
    openwebui: RunningOpenWebUI, cli: Cli, keys_limited_to: Callable[[str], None]
) -> None:
    keys_limited_to(EVERYTHING_BUT_FILES)
    result = cli("check", env=with_api_key(openwebui))

    assert result.returncode == 1, result.output
    [files] = lines_starting(result, "FAIL files")
    assert "/api/v1/files" in files
    keys_limited_to(EVERYTHING_BUT_FILES + ",/api/v1/files")
    result = cli("check", env=with_api_key(openwebui))
    assert lines_starting(result, "ok   files"), result.output


@pytest.fixture
def old_release() -> Iterator[str]:
    """A server that says it is Open WebUI 0.6.14, one release too old."""

    class Version(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"version": "0.6.14"}).encode()
            self.send_response(200 if self.path == "/api/version" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Version)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_check_refuses_a_release_older_than_0_6_15(old_release: str, cli: Cli) -> None:
    env = {"OPENWEBUI_URL": old_release, "OPENWEBUI_API_KEY": "sk-whatever"}
    result = cli("check", env=env)

    assert result.returncode == 1, result.output
    [failure] = lines_starting(result, "FAIL")
    assert failure.startswith("FAIL open webui"), failure
    assert "0.6.14 is older than 0.6.15" in failure
    assert "Traceback" not in result.output


def test_check_with_email_and_password(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli("check", env=signed_in(openwebui))

    assert result.returncode == 0, result.output
    assert f"version {openwebui.version}" in result.stdout
    assert "jwt" in result.stdout
    assert "live events" in result.stdout
    assert "fake-model is available" in result.stdout
    assert openwebui.admin_password not in result.output


def test_check_reports_unknown_model(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli("check", env=with_api_key(openwebui, OPENWEBUI_MODEL="nope"))

    assert result.returncode == 1, result.output
    [model_line] = lines_starting(result, "FAIL model")
    assert "nope" in model_line
    # It names the models there are, so the fix is a copy and paste.
    assert "it has " in model_line and "fake-model-2" in model_line
    # The server itself was fine: only the model line failed.
    assert lines_starting(result, "FAIL") == [model_line]


def test_check_reports_wrong_password(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    result = cli("check", env=signed_in(openwebui, "not-the-password"))

    assert result.returncode == 1, result.output
    [failure] = lines_starting(result, "FAIL")
    # The user learns that the credentials are wrong, not that the server is down.
    assert failure.startswith("FAIL auth"), failure
    assert "email or password" in failure.lower(), failure
    assert "not-the-password" not in result.output
    assert "Traceback" not in result.output


def test_check_rejects_invalid_settings(cli: Cli) -> None:
    result = cli("check", env={"OPENWEBUI_URL": "ftp://x", "OPENWEBUI_API_KEY": "sk-whatever"})

    assert result.returncode == 2, result.output
    assert "OPENWEBUI_URL" in result.stderr
    assert "ftp://x" not in result.output  # names the setting, never repeats the value
    assert "Traceback" not in result.output


def test_check_prints_who_can_use_the_bot(openwebui: RunningOpenWebUI, cli: Cli) -> None:
    env = with_api_key(
        openwebui,
        BRIDGE_ALLOWED_CHANNELS="C0SUPPORT,C0HELP",
        BRIDGE_DENIED_USERS="U0MALLORY",
        BRIDGE_USER_RATE_LIMIT="10",
    )
    result = cli("check", env=env)

    assert result.returncode == 0, result.output
    [line] = lines_starting(result, "ok   access:")
    assert line == (
        "ok   access: Answers in 2 channels, to everyone except 1 user; no guests;"
        " no external users; DMs on; 10 questions per user per minute;"
        " questions up to 32,000 characters; up to 5 questions waiting per thread;"
        " refused people get one short notice an hour."
    )


TOGGLE_FILTER = '''"""
title: Bridge check filter
"""


class Filter:
    def __init__(self):
        # A toggle filter runs only for requests that name it in filter_ids: no
        # other test's completion on the shared server passes through it.
        self.toggle = True

    def inlet(self, body: dict) -> dict:
        return body
'''


@dataclass
class Made:
    knowledge_id: str
    filter_on: str  # active and global: Open WebUI runs it when asked
    filter_off: str  # present but turned off


@pytest.fixture
def made(openwebui: RunningOpenWebUI) -> Iterator[Made]:
    """A knowledge collection and two filter functions, removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    with openwebui.client() as http:
        created = http.post(
            "/api/v1/knowledge/create", json={"name": f"Handbook {tag}", "description": "check"}
        )
        created.raise_for_status()
        things = Made(created.json()["id"], f"bridge_on_{tag}", f"bridge_off_{tag}")
        try:
            for function_id in (things.filter_on, things.filter_off):
                form = {"id": function_id, "name": function_id, "content": TOGGLE_FILTER,
                        "meta": {"description": "check"}}  # fmt: skip
                http.post("/api/v1/functions/create", json=form).raise_for_status()
            http.post(f"/api/v1/functions/id/{things.filter_on}/toggle").raise_for_status()
            http.post(f"/api/v1/functions/id/{things.filter_on}/toggle/global").raise_for_status()
            yield things
        finally:
            for function_id in (things.filter_on, things.filter_off):
                http.delete(f"/api/v1/functions/id/{function_id}/delete")
            http.delete(f"/api/v1/knowledge/{things.knowledge_id}/delete")


def test_check_lists_each_channel_and_what_it_lacks(
    openwebui: RunningOpenWebUI, cli: Cli, made: Made, tmp_path: Path
) -> None:
    prompt = "You are the support desk of Example Ltd."
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[defaults]
system_prompt = "{prompt}"

[[channels]]
id = "C0SUPPORT"
name = "support"
model = "fake-model-2"
respond_to = "all"
knowledge_ids = ["{made.knowledge_id}"]
filter_ids = ["{made.filter_on}"]
features = {{ web_search = true }}
update_interval = 2

[[channels]]
id = 123456789012345678
model = "nope-model"
knowledge_ids = ["no-such-collection"]
filter_ids = ["no_such_filter", "{made.filter_off}"]
respond_to = "off"
"""
    )
    result = cli("--config", str(config), "check", env=with_api_key(openwebui))

    assert result.returncode == 1, result.output
    lines = result.stdout.splitlines()
    access = next(i for i, line in enumerate(lines) if line.startswith("ok   access:"))
    # After the access line: the defaults, then one line per channel, in file order.
    assert lines[access + 1] == (
        f"ok   defaults: model fake-model, respond to mentions, system prompt {len(prompt)} chars"
    )
    assert lines[access + 2] == (
        "ok   channel C0SUPPORT (support): model fake-model-2, respond to all,"
        f" knowledge {made.knowledge_id}, filters {made.filter_on},"
        f" system prompt {len(prompt)} chars, features web_search, update every 2 s"
    )
    failed = lines[access + 3]
    assert failed.startswith("FAIL channel 123456789012345678: "), failed
    for missing in (
        "model nope-model is not available",
        "knowledge no-such-collection does not exist",
        "filter no_such_filter does not exist",
        f"filter {made.filter_off} is turned off",
    ):
        assert missing in failed, failed
    assert failed.endswith(
        f"model nope-model, respond to off, knowledge no-such-collection,"
        f" filters no_such_filter {made.filter_off}, system prompt {len(prompt)} chars)"
    ), failed
    # Only that channel failed.
    assert lines_starting(result, "FAIL") == [failed]
    assert prompt not in result.output  # the prompt's length, never its text


def test_check_takes_the_default_model_from_the_file_unless_the_environment_sets_it(
    openwebui: RunningOpenWebUI, cli: Cli, tmp_path: Path
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[defaults]\nmodel = "fake-model-2"\n')
    env = with_api_key(openwebui)
    del env["OPENWEBUI_MODEL"]

    from_file = cli("--config", str(config), "check", env=env)
    from_env = cli("--config", str(config), "check", env=with_api_key(openwebui))
    unset = cli("check", env=env)

    assert from_file.returncode == 0, from_file.output
    assert "ok   model: fake-model-2 is available" in from_file.stdout.splitlines()
    assert from_env.returncode == 0, from_env.output
    assert "ok   model: fake-model is available" in from_env.stdout.splitlines()
    assert unset.returncode == 1, unset.output
    assert lines_starting(unset, "FAIL") == [
        "FAIL model: no model: set OPENWEBUI_MODEL or [defaults] model"
    ]


def test_check_reports_a_default_filter_open_webui_would_not_run(
    openwebui: RunningOpenWebUI, cli: Cli, made: Made
) -> None:
    env = with_api_key(openwebui, OPENWEBUI_FILTER_IDS=f"{made.filter_on},{made.filter_off}")
    result = cli("check", env=env)

    assert result.returncode == 1, result.output
    assert f"ok   filter: {made.filter_on} is on" in result.stdout.splitlines()
    [failure] = lines_starting(result, "FAIL")
    assert failure.startswith(f"FAIL filter: filter {made.filter_off} is turned off"), failure
