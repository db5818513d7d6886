"""Install and run real Open WebUI servers for contract / end-to-end tests.

Each version lives in its own virtualenv outside the repo (several GB each),
reused between runs. Servers get a fresh DATA_DIR, so every run starts with an
empty database: the first signup becomes admin.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx

from tests.harness.env import clean_env
from tests.harness.model_server import RemoteModelServer, ThreadedModelServer

# The whole suite runs on the tutorial's release and the newest one.
MAIN_VERSIONS = ("0.6.15", "0.12.4")
# A release on each side of each turn-contract boundary named in bridge/openwebui.py
# (``ServerInfo``): the turn, recovery, regenerate, stop, rating and filing contract
# tests and the render test run on these too (marked ``every_release``).
BOUNDARY_VERSIONS = ("0.6.41", "0.8.12", "0.9.0", "0.11.4")
VERSIONS = MAIN_VERSIONS + BOUNDARY_VERSIONS
# torch pinned explicitly: it is in the machine's local wheel dir, and without
# the pin pip would resolve a multi-GB CUDA build from PyPI.
TORCH_PIN = "torch==2.13.0"
# What a release's package forgot to require: 0.9.0 uses SQLAlchemy's aiosqlite
# dialect without depending on aiosqlite (0.11 pins the version below).
EXTRA_REQUIREMENTS = {"0.9.0": ("aiosqlite==0.22.1",)}
HEALTH_TIMEOUT = 300.0
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "Admin-Passw0rd!"
DEFAULT_MODEL = "fake-model"


# -- installation ---------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("OWUI_BRIDGE_CACHE", "~/.cache/owui-bridge")).expanduser()


def venv_path(version: str) -> Path:
    return cache_dir() / f"openwebui-{version}"


def installed_version(venv: Path) -> str | None:
    """Version of open-webui importable in ``venv``, or None."""
    python = venv / "bin" / "python"
    if not (python.exists() and (venv / "bin" / "open-webui").exists()):
        return None
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('open-webui'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def _wait_for_manual_install(version: str, timeout: float = 3600) -> None:
    """A hand-started install logs to install-<v>.log and ends with 'rc=N'.
    Never install on top of one that is still running."""
    log = cache_dir() / f"install-{version}.log"
    deadline = time.monotonic() + timeout
    while log.exists() and "rc=" not in _tail(log, 300):
        if time.monotonic() > deadline:
            raise TimeoutError(f"manual install of {version} still running: {log}")
        time.sleep(5)


@contextlib.contextmanager
def _install_lock(version: str) -> Iterator[None]:
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / f"openwebui-{version}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # blocks while another process installs
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_installed(version: str, *, quiet: bool = False) -> Path:
    """Return the virtualenv for ``version``, creating it if needed."""
    venv = venv_path(version)
    marker = venv / ".installed"
    # The marker names everything installed: a cached venv missing an added extra
    # is completed, not reused as it is.
    wanted = " ".join((f"open-webui=={version}", *EXTRA_REQUIREMENTS.get(version, ()))) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return venv
    with _install_lock(version):
        if marker.exists() and marker.read_text() == wanted:  # done while we waited
            return venv
        _wait_for_manual_install(version)
        if installed_version(venv) != version or version in EXTRA_REQUIREMENTS:
            _pip_install(venv, version, quiet=quiet)
            if installed_version(venv) != version:
                raise RuntimeError(f"open-webui {version} not importable in {venv}")
        marker.write_text(wanted)
    return venv


def _pip_install(venv: Path, version: str, *, quiet: bool) -> None:
    out = subprocess.DEVNULL if quiet else None
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=out)
    subprocess.run(
        [*pip, TORCH_PIN, f"open-webui=={version}", *EXTRA_REQUIREMENTS.get(version, ())],
        check=True,
        stdout=out,
    )


# -- running --------------------------------------------------------------


@dataclass
class UserCredentials:
    email: str
    password: str
    jwt: str
    user_id: str
    role: str


@dataclass
class RunningOpenWebUI:
    version: str
    url: str
    admin_email: str
    admin_password: str
    jwt: str
    api_key: str
    user_id: str
    model_url: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None
    startup_seconds: float = 0.0

    @property
    def release(self) -> tuple[int, ...]:
        """The version as numbers, for tests whose expectations changed with it."""
        return tuple(int(part) for part in self.version.split(".")[:3])

    def headers(self, *, api_key: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key if api_key else self.jwt}"}

    def client(self, *, api_key: bool = False, timeout: float = 30) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers=self.headers(api_key=api_key), timeout=timeout
        )

    def signin(self, email: str, password: str) -> UserCredentials:
        data = _post_json(self.url, "/api/v1/auths/signin", {"email": email, "password": password})
        return UserCredentials(email, password, data["token"], data["id"], data["role"])

    def create_user(
        self, role: str = "user", *, name: str | None = None, password: str = "User-Passw0rd!"
    ) -> UserCredentials:
        """Add a user as admin (signup may be closed after the first user) and
        sign it in. Note: role "user" does not see base models such as
        fake-model unless they are made public (Open WebUI access control)."""
        email = f"{name or role}-{uuid.uuid4().hex[:8]}@example.com"
        _post_json(
            self.url,
            "/api/v1/auths/add",
            {
                "name": name or email.split("@")[0],
                "email": email,
                "password": password,
                "role": role,
            },
            token=self.jwt,
        )
        return self.signin(email, password)

    def make_model_public(self, model_id: str = DEFAULT_MODEL) -> None:
        """Let role "user" accounts see a base model. One body fits both
        versions: 0.6.x reads ``access_control`` (None = public), 0.12.x reads
        ``access_grants`` (user "*" read = public); each ignores the other."""
        body = {
            "id": model_id,
            "base_model_id": None,
            "name": model_id,
            "meta": {},
            "params": {},
            "access_control": None,
            "access_grants": [
                {"principal_type": "user", "principal_id": "*", "permission": "read"}
            ],
        }
        _post_json(self.url, "/api/v1/models/create", body, token=self.jwt)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None

    def to_state(self) -> dict[str, Any]:
        # Not asdict(): it would deep-copy the Popen object.
        state = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "process"}
        state["log_path"] = str(self.log_path) if self.log_path else None
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RunningOpenWebUI:
        known = {f.name for f in fields(cls)} - {"process"}
        kwargs = {k: v for k, v in state.items() if k in known}
        if kwargs.get("log_path"):
            kwargs["log_path"] = Path(kwargs["log_path"])
        return cls(**kwargs)


def server_env(version: str, model_url: str, data_dir: Path) -> dict[str, str]:
    """Environment for a quick, offline, single-upstream Open WebUI."""
    return clean_env(
        DATA_DIR=str(data_dir),
        WEBUI_SECRET_KEY="owui-bridge-tests",
        OFFLINE_MODE="true",
        HF_HUB_OFFLINE="1",
        ENABLE_OLLAMA_API="false",
        OPENAI_API_BASE_URL=model_url,
        OPENAI_API_KEY="x",
        # API keys: 0.6.x reads ENABLE_API_KEY (default on), 0.12.x reads
        # ENABLE_API_KEYS (default off). Set both; each ignores the other.
        ENABLE_API_KEY="true",
        ENABLE_API_KEYS="true",
        # 0.6.41 to 0.8.x also ask admins for this permission before making a key.
        USER_PERMISSIONS_FEATURES_API_KEYS="true",
        RAG_EMBEDDING_ENGINE="openai",  # avoids loading sentence-transformers
        BYPASS_EMBEDDING_AND_RETRIEVAL="true",
        ENABLE_VERSION_UPDATE_CHECK="false",
        # 0.6.x adds an "arena-model" by default; keep the model list to ours.
        ENABLE_EVALUATION_ARENA_MODELS="false",
        ENABLE_WEB_SEARCH="false",
        ENABLE_IMAGE_GENERATION="false",
        DEFAULT_MODELS=DEFAULT_MODEL,
        SCARF_NO_ANALYTICS="true",
        DO_NOT_TRACK="true",
        ANONYMIZED_TELEMETRY="false",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(version: str, model_url: str, *, workdir: Path) -> RunningOpenWebUI:
    """Start Open WebUI ``version``, create admin + API key, check the model."""
    venv = ensure_installed(version)
    run_dir = workdir / f"openwebui-{version}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    data_dir = run_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=run_dir,
            env=server_env(version, model_url, data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills workers too
        )
    try:
        wait_healthy(url, process, log_path)
        startup = time.monotonic() - started
        admin = _post_json(
            url,
            "/api/v1/auths/signup",
            {"name": "Admin", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        )
        jwt = admin["token"]
        api_key = _post_json(url, "/api/v1/auths/api_key", {}, token=jwt)["api_key"]
        server = RunningOpenWebUI(
            version=version,
            url=url,
            admin_email=ADMIN_EMAIL,
            admin_password=ADMIN_PASSWORD,
            jwt=jwt,
            api_key=api_key,
            user_id=admin["id"],
            model_url=model_url,
            process=process,
            log_path=log_path,
            startup_seconds=round(startup, 1),
        )
        wait_for_model(server, DEFAULT_MODEL)
        return server
    except BaseException:
        stop_process_group(process)
        raise


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = HEALTH_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"Open WebUI exited with {process.returncode}; log tail:\n{_tail(log_path)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            resp = httpx.get(f"{url}/health", timeout=2)
            if resp.status_code == 200 and resp.json().get("status") is True:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Open WebUI at {url} not healthy after {timeout}s:\n{_tail(log_path)}")


def wait_for_model(server: RunningOpenWebUI, model_id: str, timeout: float = 30) -> None:
    """Open WebUI caches the upstream model list (1 s TTL in both versions);
    poll until the model is listed for the JWT and for the API key."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        ok = True
        for use_key in (False, True):
            resp = httpx.get(
                f"{server.url}/api/models", headers=server.headers(api_key=use_key), timeout=10
            )
            last = resp.text
            ids = [m.get("id") for m in resp.json().get("data", [])] if resp.is_success else []
            ok = ok and model_id in ids
        if ok:
            return
        time.sleep(1)
    raise TimeoutError(f"model {model_id!r} not listed by {server.url}: {last}")


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def _post_json(url: str, path: str, body: dict[str, Any], *, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=60)
    if not resp.is_success:
        raise RuntimeError(f"POST {path} -> {resp.status_code}: {resp.text[:500]}")
    return resp.json()


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - chars))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


# -- state file (reuse servers across pytest runs) --------------------------


def write_state(path: Path, model_url: str, servers: dict[str, RunningOpenWebUI]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model_url": model_url, "servers": {v: s.to_state() for v, s in servers.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)  # atomic: readers never see a half-written file


def read_state(path: Path) -> tuple[str, dict[str, RunningOpenWebUI]]:
    state = json.loads(path.read_text())
    servers = {v: RunningOpenWebUI.from_state(s) for v, s in state["servers"].items()}
    return state["model_url"], servers


# -- session pool ---------------------------------------------------------


class ServerPool:
    """Starts each Open WebUI version at most once per session.

    ``get`` starts the version asked for and the next one in background threads
    (two servers start in about the time of one on this machine; six at once
    would starve the tests already running), then waits only for the one asked
    for: pytest runs one version's tests while the next is still booting.
    """

    def __init__(
        self,
        model: ThreadedModelServer | RemoteModelServer,
        versions: tuple[str, ...],
        workdir: Path,
        *,
        external: dict[str, RunningOpenWebUI] | None = None,
    ) -> None:
        self.model = model
        self.versions = versions
        self.workdir = workdir
        self._external = external
        self._executor: ThreadPoolExecutor | None = None
        self._futures: dict[str, Future[RunningOpenWebUI]] = {}

    @classmethod
    def from_state(cls, path: Path) -> ServerPool:
        model_url, servers = read_state(path)
        return cls(RemoteModelServer(model_url), tuple(servers), path.parent, external=servers)

    def get(self, version: str) -> RunningOpenWebUI:
        if self._external is not None:
            if version not in self._external:
                raise LookupError(f"Open WebUI {version} not in the state file")
            return self._external[version]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max(1, len(self.versions)), "owui-start")
        ahead = self.versions[self.versions.index(version) + 1 :][:1]
        for v in (version, *ahead):
            if v not in self._futures:
                self._futures[v] = self._executor.submit(
                    start_server, v, self.model.url, workdir=self.workdir
                )
        return self._futures[version].result()

    def stop_all(self) -> None:
        for future in self._futures.values():
            # Waits for a server still starting, so nothing is left orphaned.
            with contextlib.suppress(Exception):
                future.result().stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
