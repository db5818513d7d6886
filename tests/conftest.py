"""Shared fixtures: a fake model server and real Open WebUI servers.

Env (test controls, never bridge settings):
  OWUI_VERSIONS=0.12.4[,0.9.0]    restrict the Open WebUI versions under test (the
                                  whole suite runs on 0.6.15 and 0.12.4; tests marked
                                  ``every_release`` also on the boundary releases)
  OWUI_BRIDGE_TEST_SERVERS=FILE   reuse servers from ``python -m tests.harness serve``
  CI=true                         every version must run and pass a real-server
                                  test, and no test may be left out (paths, -k, -m,
                                  PYTEST_ADDOPTS, deselected or skipped)

Every bridge setting (OPENWEBUI_*, BRIDGE_*, SLACK_*, DISCORD_*) is removed from
the environment when this file is imported, before any test reads settings: the
README's quickstart exports the user's own Open WebUI URL and credentials, and
settings read the environment first, so tests would otherwise talk to the
user's real services and database.
"""

from __future__ import annotations

import os

SETTING_PREFIXES = ("OPENWEBUI_", "BRIDGE_", "SLACK_", "DISCORD_")
for _name in [n for n in os.environ if n.upper().startswith(SETTING_PREFIXES)]:
    del os.environ[_name]

from collections.abc import Generator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.harness.model_server import (  # noqa: E402
    ModelServer,
    RemoteModelServer,
    ThreadedModelServer,
)
from tests.harness.openwebui import (  # noqa: E402
    MAIN_VERSIONS,
    VERSIONS,
    RunningOpenWebUI,
    ServerPool,
)
from tests.harness.postgres import PostgresServer, find_binaries  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / ".test-artifacts"
SELECTED = tuple(
    v.strip() for v in os.environ.get("OWUI_VERSIONS", ",".join(VERSIONS)).split(",") if v.strip()
)
STATE_FILE = os.environ.get("OWUI_BRIDGE_TEST_SERVERS")
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")

# Real-server tests that passed, per Open WebUI version (filled as tests run).
_passed: dict[str, int] = {}
_missing_versions: list[str] = []
# What a run left out: deselected and skipped tests, and why CI=true fails for it.
_deselected: list[str] = []
_skipped: list[str] = []
_ran: dict[str, int] = {}  # tests that passed, per tier
_ci_failures: list[str] = []


@pytest.fixture(scope="session")
def in_ci() -> bool:
    """True under CI: missing prerequisites are failures, not skips."""
    return IN_CI


@pytest.fixture(scope="session")
def postgres_server(in_ci: bool) -> Iterator[PostgresServer]:
    """A real PostgreSQL for the session; missing binaries are a skip on a laptop and a
    failure in CI (`make test-deps` installs them)."""
    bindir = find_binaries()
    if bindir is None:
        reason = "PostgreSQL (initdb, pg_ctl) is not installed; `make test-deps` installs it"
        if in_ci:
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer.start(bindir)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database of its own for one test."""
    yield from postgres_server.database()


@pytest.fixture(scope="session")
def model_server() -> Iterator[ThreadedModelServer | RemoteModelServer]:
    if STATE_FILE:
        yield ServerPool.from_state(Path(STATE_FILE)).model
        return
    server = ModelServer.run_in_thread()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openwebui_pool(model_server: ThreadedModelServer | RemoteModelServer) -> Iterator[ServerPool]:
    pool = (
        ServerPool.from_state(Path(STATE_FILE))
        if STATE_FILE
        else ServerPool(model_server, SELECTED, ARTIFACTS / "openwebui")
    )
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def openwebui(request: pytest.FixtureRequest, openwebui_pool: ServerPool) -> RunningOpenWebUI:
    """A real Open WebUI server, one per version (see ``pytest_generate_tests``)."""
    return openwebui_pool.get(request.param)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every real-server test runs on the main releases; those marked every_release
    # also on a release at each side of each boundary where the server changed.
    if "openwebui" not in metafunc.fixturenames:
        return
    every = metafunc.definition.get_closest_marker("every_release") is not None
    since = metafunc.definition.get_closest_marker("since")
    oldest = tuple(since.args[0]) if since is not None else ()
    versions = [
        v
        for v in SELECTED
        if (every or v in MAIN_VERSIONS) and tuple(int(p) for p in v.split(".")) >= oldest
    ]
    metafunc.parametrize(
        "openwebui", versions, indirect=True, scope="session", ids=[f"owui-{v}" for v in versions]
    )


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and set(SELECTED) != set(VERSIONS):
        raise pytest.UsageError(
            f"CI=true runs every Open WebUI version {', '.join(VERSIONS)}; "
            f"OWUI_VERSIONS selects {', '.join(SELECTED) or 'none'}. Unset OWUI_VERSIONS."
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "openwebui" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.openwebui)


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(item.nodeid for item in items)


def tier(item: pytest.Item) -> str:
    """The part of the suite a test belongs to, for the per-tier counts."""
    path = item.nodeid.split("::")[0]
    callspec = getattr(item, "callspec", None)
    version = callspec.params.get("openwebui") if callspec is not None else None
    if path.startswith("tests/faults/"):
        return "faults"
    if path.startswith("tests/deploy/"):
        return "deploy"
    if path.startswith("tests/e2e/test_render"):
        return "render"
    if path.startswith("tests/e2e/test_slack"):
        return "e2e slack"
    if path.startswith("tests/e2e/test_discord"):
        return "e2e discord"
    if path.startswith(("tests/contract/", "tests/e2e/")) and version is not None:
        return f"real-server {version}"
    return "unit"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    callspec = getattr(item, "callspec", None)
    version = callspec.params.get("openwebui") if callspec is not None else None
    if version is not None and report.when == "call" and report.passed:
        _passed[version] = _passed.get(version, 0) + 1
    if report.skipped:
        _skipped.append(item.nodeid)
    if report.when == "call" and report.passed:
        _ran[tier(item)] = _ran.get(tier(item), 0) + 1
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under CI=true a run proves only what it ran: every test, on every version.
    if not IN_CI:
        return
    config = session.config
    if config.option.collectonly:
        _ci_failures.append("--collect-only runs no test")
    if config.args_source is not pytest.Config.ArgsSource.TESTPATHS:
        _ci_failures.append(f"only {' '.join(config.args)} was run, not the whole suite")
    if os.environ.get("PYTEST_ADDOPTS"):
        _ci_failures.append("PYTEST_ADDOPTS is set")
    if _deselected:
        _ci_failures.append(f"{len(_deselected)} test(s) deselected (-k, -m or --deselect)")
    if _skipped:
        _ci_failures.append(f"{len(_skipped)} test(s) skipped: {', '.join(_skipped[:5])}")
    if not config.option.collectonly:
        _missing_versions[:] = [v for v in VERSIONS if not _passed.get(v)]
    if (_ci_failures or _missing_versions) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _ran:
        counts = " · ".join(f"{name} {count}" for name, count in sorted(_ran.items()))
        terminalreporter.write_line(f"passed per tier: {counts}")
    if _skipped and not IN_CI:
        terminalreporter.write_line(f"skipped {len(_skipped)}: {', '.join(_skipped)}", yellow=True)
    for reason in _ci_failures:
        terminalreporter.write_line(f"CI=true: {reason}; the session fails.", red=True, bold=True)
    for version in _missing_versions:
        terminalreporter.write_line(
            f"CI=true: no real-server test passed against Open WebUI {version}; the session fails.",
            red=True,
            bold=True,
        )
