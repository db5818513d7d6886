"""The image, without Docker: deploy/docker/Dockerfile's own steps build it into a
fresh directory (tests/deploy/dockerfile.py), then its entry command runs as an
unprivileged user with only the environment the image and deploy/compose.yaml
give the bridge, and answers a Slack mention (HTTP mode, the local Slack-compatible
server) from a real Open WebUI: as the service bridge (SQLite on /data) and as
bridge-postgres (the profile postgres, on the tests' PostgreSQL, without /data).
Runs on the newest Open WebUI under test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import asyncpg
import httpx
import pytest

from tests.deploy import compose, dockerfile, nginx
from tests.fakes.slack_server import BOT_USER_ID, FakeSlack
from tests.harness.bridge_process import BridgeProcess
from tests.harness.env import clean_env
from tests.harness.model_server import expected_reply
from tests.harness.openwebui import RunningOpenWebUI, ServerPool, free_port

pytestmark = pytest.mark.openwebui  # needs a real Open WebUI (one release, see below)

NOBODY = 65534
SECRET = "image-signing-secret"


async def ask(fake: FakeSlack, url: str, text: str, retries: int = 0) -> list[str]:
    """Alice mentions the bot in C1 through ``url`` (the Slack delivery, then
    ``retries`` retries of it); the thread's answer once it is complete."""
    ts, _message, mention = fake.user_says("C1", "UALICE", f"<@{BOT_USER_ID}> {text}")
    assert mention is not None
    for retry in range(retries + 1):
        status, _ = await fake.post_event(
            f"{url}/slack/events", mention, SECRET, retry_num=retry or None
        )
        assert status == 200  # each 200 comes after the replica judged the delivery
    await fake.wait_for(
        lambda: any(m.stream_state == "stopped" for m in fake.bot_replies("C1", ts)),
        timeout=60,
        what="the answer",
    )
    return [m.text for m in fake.bot_replies("C1", ts)]


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


@pytest.fixture(scope="module")
def newest_openwebui(openwebui_pool: ServerPool) -> RunningOpenWebUI:
    """One Open WebUI, the newest under test: the image is the same on every release."""
    return openwebui_pool.get(max(openwebui_pool.versions, key=_version))


def _as_user() -> dict[str, Any]:
    """Popen arguments that drop root (as the image's USER does); nothing when not root."""
    if os.geteuid() != 0:
        return {}
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def _base_python() -> str:
    """A Python 3.11 the unprivileged user can run (python:3.11-slim's stands in for it)."""
    candidates = ["/usr/local/bin/python3.11", "/usr/bin/python3.11"]
    candidates.append(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    for candidate in candidates:
        if not os.path.exists(candidate):
            continue
        probe = [candidate, "-c", "import sys, venv; assert sys.version_info[:2] == (3, 11)"]
        if subprocess.run(probe, capture_output=True, check=False, **_as_user()).returncode == 0:
            return candidate
    pytest.fail(f"no Python 3.11 with venv that uid {NOBODY} may run among {candidates}")


@pytest.fixture(scope="module")
def image() -> Iterator[dockerfile.Image]:
    # Not pytest's tmp_path: that is private to root, and the bridge runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="owui-bridge-image-"))
    root.chmod(0o755)
    try:
        # The install reaches the package index as this machine's pip does (a docker
        # build would use the builder's own settings); the bridge later gets none of these.
        reach = {
            k: v
            for k, v in os.environ.items()
            if k.startswith("PIP_") or k.lower() in ("http_proxy", "https_proxy", "no_proxy")
        }
        yield dockerfile.build(root, _base_python(), clean_env() | reach)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _on_this_machine(env: dict[str, str], postgres: SplitResult, port: int) -> dict[str, str]:
    """A bridge-postgres replica's environment for a process here: the tests' PostgreSQL
    for the host name Compose's network resolves, and its own port for the address
    each container has."""
    assert "@postgres:5432/" in env["BRIDGE_DATABASE"]
    database = env["BRIDGE_DATABASE"].replace(
        "@postgres:5432/", f"@{postgres.hostname}:{postgres.port}/"
    )
    return env | {"BRIDGE_DATABASE": database, "BRIDGE_HTTP_PORT": str(port)}


@pytest.fixture
def postgres_for(service: str, request: pytest.FixtureRequest) -> str | None:
    """A database of the tests' PostgreSQL for bridge-postgres, none for bridge."""
    return request.getfixturevalue("postgres_url") if service == "bridge-postgres" else None


# bridge-postgres (Compose's profile postgres) first: it runs before /data exists.
@pytest.mark.parametrize("service", ["bridge-postgres", "bridge"])
async def test_the_image_answers_a_slack_mention(
    image: dockerfile.Image,
    newest_openwebui: RunningOpenWebUI,
    tmp_path: Path,
    service: str,
    postgres_for: str | None,
) -> None:
    sqlite_file = image.path("/data/owui-bridge.db")
    on_postgres = postgres_for is not None
    if postgres_for is not None:
        # Compose's postgres service, played by the tests' PostgreSQL (it trusts any
        # password); no /data volume.
        postgres = urlsplit(postgres_for)
        database_env = {
            "POSTGRES_USER": str(postgres.username),
            "POSTGRES_DB": postgres.path.lstrip("/"),
            "POSTGRES_PASSWORD": "image-pg-password",
        }
        had_sqlite_file = sqlite_file.exists()
    else:
        # The final stage's RUN gives its user /data; here the unprivileged user gets it.
        database_env = {}
        data = image.path("/data")
        data.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(data, NOBODY, NOBODY)
    port = free_port()
    async with FakeSlack() as fake:
        fake.add_user("UALICE", "Alice")
        # What a user puts in deploy/.env; every other variable stays empty.
        dotenv = {
            "OPENWEBUI_URL": newest_openwebui.url,
            "OPENWEBUI_API_KEY": newest_openwebui.api_key,
            "OPENWEBUI_MODEL": "fake-model",
            "SLACK_BOT_TOKEN": "xoxb-image",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.api_url,
            "BRIDGE_HTTP_PORT": str(port),
            **database_env,
        }
        env = image.container_env() | compose.service_environment(service, dotenv)
        if on_postgres:
            env = _on_this_machine(env, postgres, port)
        bridge = BridgeProcess(
            tmp_path / "bridge.log",
            command=image.entry_command(),
            cwd=image.root,
            clean=False,  # the image's environment, nothing of this machine's
            own_group=True,  # so a hung teardown can kill it all
            **_as_user(),
        )
        await bridge.start(env, args=())  # ENTRYPOINT and CMD say it all
        try:
            url = bridge.url
            async with httpx.AsyncClient() as client:
                await bridge.wait_ready("/healthz", 200)
                assert await ask(fake, url, "hello from the image") == [
                    expected_reply("Alice: hello from the image")
                ]
                ready = await client.get(f"{url}/readyz")
                checks = {"openwebui": True, "database": True, "slack": True}
                assert ready.json() == {"ready": True, "checks": checks}
            # Docker's and Compose's health checks, run as they would be in the container.
            healthchecks = {
                "Dockerfile": dockerfile.healthcheck_command(image.final),
                "compose.yaml": compose.load()["services"][service]["healthcheck"]["test"][1:],
            }
            for where, command in healthchecks.items():
                done = await asyncio.to_thread(
                    subprocess.run, command, env=env, capture_output=True, check=False,
                    **_as_user(),
                )  # fmt: skip
                assert done.returncode == 0, (where, done.stderr)
        finally:
            # SIGTERM, as Docker and Kubernetes stop a container.
            code = await bridge.stop(grace=60)
            log = bridge.output()
            if bridge.killed:
                log += "\n(still running 60 s after SIGTERM: killed)"
    # 0: SIGTERM reached the bridge itself (the entry script execs it) and it drained.
    assert code == 0, log
    assert "xoxb-image" not in log and newest_openwebui.api_key not in log
    assert "image-pg-password" not in log
    if on_postgres:
        # Kept in PostgreSQL, nothing on /data.
        connection = await asyncpg.connect(env["BRIDGE_DATABASE"])
        try:
            assert await connection.fetchval("select count(*) from conversations") == 1
        finally:
            await connection.close()
        assert sqlite_file.exists() == had_sqlite_file
        return
    # The database is where the image puts it, on the volume, the bridge's own.
    database = sqlite_file
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert database.stat().st_uid == NOBODY
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from conversations").fetchone() == (1,)


async def test_two_replicas_behind_the_load_balancer_answer_each_question_once(
    image: dockerfile.Image,
    newest_openwebui: RunningOpenWebUI,
    tmp_path: Path,
    postgres_url: str,
) -> None:
    """Compose's profile postgres: two bridge-postgres replicas on one database, and
    deploy/nginx/bridge-lb.conf in front of them in a real nginx, as Slack reaches them."""
    postgres = urlsplit(postgres_url)
    lb_port, ports = free_port(), [free_port(), free_port()]
    async with FakeSlack() as fake:
        fake.add_user("UALICE", "Alice")
        dotenv = {
            "OPENWEBUI_URL": newest_openwebui.url,
            "OPENWEBUI_API_KEY": newest_openwebui.api_key,
            "OPENWEBUI_MODEL": "fake-model",
            "SLACK_BOT_TOKEN": "xoxb-image",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.api_url,
            "BRIDGE_HTTP_PORT": str(lb_port),  # the host port: bridge-lb's
            "POSTGRES_USER": str(postgres.username),
            "POSTGRES_DB": postgres.path.lstrip("/"),
            "POSTGRES_PASSWORD": "image-pg-password",
        }
        env = image.container_env() | compose.service_environment("bridge-postgres", dotenv)
        replicas = [
            BridgeProcess(
                tmp_path / f"replica-{i}.log",
                command=image.entry_command(),
                cwd=image.root,
                clean=False,
                own_group=True,
                **_as_user(),
            )
            for i in range(2)
        ]
        for replica, port in zip(replicas, ports, strict=True):
            await replica.start(_on_this_machine(env, postgres, port), args=())
        lb_dir = tmp_path / "lb"
        lb_dir.mkdir()
        try:
            with nginx.serving(lb_dir, nginx.local_copy(lb_port, ports)):
                # Both replicas ready, each by its own Compose health check too.
                for replica in replicas:
                    await replica.wait_ready("/readyz", 200)
                    command = compose.load()["services"]["bridge-postgres"]["healthcheck"]
                    done = await asyncio.to_thread(
                        subprocess.run, command["test"][1:], env=replica.env,
                        capture_output=True, check=False, **_as_user(),
                    )  # fmt: skip
                    assert done.returncode == 0, done.stderr
                lb = f"http://127.0.0.1:{lb_port}"
                async with httpx.AsyncClient() as client:
                    for _ in range(40):  # nginx may still be binding its port
                        with contextlib.suppress(httpx.TransportError):
                            if (await client.get(f"{lb}/healthz")).status_code == 200:
                                break
                        await asyncio.sleep(0.25)
                    else:
                        pytest.fail(f"nginx does not answer on {lb}")
                # Slack's retries, round robin: each replica gets a copy.
                assert await ask(fake, lb, "hello from the replicas", retries=2) == [
                    expected_reply("Alice: hello from the replicas")
                ]
                # The three copies went to both replicas (round robin), each taken.
                events = [r for r in nginx.requests(lb_dir) if r[1] == "/slack/events"]
                assert [status for _, _, status, _ in events] == [200, 200, 200]
                reached = {tried[-1] for _, _, _, tried in events}
                assert reached == {f"127.0.0.1:{port}" for port in ports}
                # One replica stops (a rolling restart): the next question reaches the other.
                assert await replicas[0].stop(grace=60) == 0, replicas[0].output()
                assert await ask(fake, lb, "still there?") == [
                    expected_reply("Alice: still there?")
                ]
                (*_, last) = [r for r in nginx.requests(lb_dir) if r[1] == "/slack/events"]
                assert last[2] == 200 and last[3][-1] == f"127.0.0.1:{ports[1]}"
        finally:
            codes = [await replica.stop(grace=60) for replica in replicas]
            logs = "\n".join(replica.output() for replica in replicas)
    # SIGTERM reached each bridge and it drained.
    assert codes == [0, 0], logs
    assert "xoxb-image" not in logs and newest_openwebui.api_key not in logs
    assert "image-pg-password" not in logs
    # Both replicas wrote to the one database: two threads, one answered turn each.
    connection = await asyncpg.connect(replicas[1].env["BRIDGE_DATABASE"])
    try:
        assert await connection.fetchval("select count(*) from conversations") == 2
        assert await connection.fetchval("select count(*) from turns") == 2
    finally:
        await connection.close()
