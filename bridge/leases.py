"""Who runs a turn when several bridge processes share one database.

Each process is one lease owner. Its name says where it runs (host, PID namespace,
PID and the PID's start time), so a process can tell that an owner on its own
machine is gone (a crash, then a restart: resumed at once) without waiting for the
lease to run out. An owner elsewhere is judged by its lease alone: it expires
``LeaseTimes.lease`` seconds after the owner's last renewal.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseTimes:
    # How long a process's turns stay its own after its last renewal: how long a turn
    # waits when its replica dies elsewhere.
    lease: float = 30.0
    # How often leases are renewed, stops asked on other replicas are noticed, and
    # work other replicas left or could not take is looked for.
    every: float = 2.0


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def _started(pid: int) -> str | None:
    """The PID's start time (clock ticks after boot): a reused PID has another one."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The command name (field 2) may hold spaces; it ends at the last ')'.
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _here() -> tuple[str, str]:
    return socket.gethostname(), _pid_namespace()


def new_owner() -> str:
    """This process's owner name (a new one for each bridge instance)."""
    host, namespace = _here()
    pid = os.getpid()
    return f"{host}:{namespace}:{pid}:{_started(pid) or '?'}:{uuid.uuid4().hex[:8]}"


def owner_dead(owner: str, me: str) -> bool:
    """Whether ``owner`` is a process on this machine that no longer runs. Owners
    elsewhere, and anything unreadable, count as alive: their leases will expire."""
    try:
        host, namespace, pid, started, _ = owner.rsplit(":", 4)
    except ValueError:
        return False
    if owner == me or (host, namespace) != _here() or namespace == "?" or started == "?":
        return False
    now = _started(int(pid)) if pid.isdigit() else "?"
    if now == "?":
        return False
    return now != started  # gone (None), or its PID now belongs to another process


class Fence:
    """Which of this process's turns it may still write to the platform: those whose
    lease a renewal confirmed lately. A process that stalled (SIGSTOP, a paused VM)
    past its lease wakes with answer text buffered; it must not show it before the
    next renewal tells whether the turn is still its own (else it is cancelled)."""

    def __init__(self, times: LeaseTimes) -> None:
        # Room for one late renewal, and never less than half the lease.
        self._window = max(times.lease - times.every, times.lease / 2)
        self._confirmed: dict[int, float] = {}  # turn → monotonic time its renewal began
        self._changed = asyncio.Event()
        self.active = False  # leases are renewed (``ThreadQueue.keep`` runs): writes wait

    def confirm(self, turn_ids: Iterable[int], since: float) -> None:
        """The turns were still this process's at ``since`` (``time.monotonic()``)."""
        for turn_id in turn_ids:
            self._confirmed[turn_id] = since
        self._changed.set()
        self._changed = asyncio.Event()

    def forget(self, turn_id: int) -> None:
        self._confirmed.pop(turn_id, None)

    def fresh(self, turn_id: int) -> bool:
        since = self._confirmed.get(turn_id)
        return since is not None and time.monotonic() - since < self._window

    async def wait(self, turn_id: int) -> None:
        """Until the turn's lease is confirmed fresh (forever, for a turn taken over)."""
        while not self.fresh(turn_id):
            await self._changed.wait()


# The fence and turn of the answer the current task writes (set by the queue's worker).
WRITING: ContextVar[tuple[Fence, int] | None] = ContextVar("writing", default=None)


async def may_write() -> None:
    """Return once the current task may write its answer to the platform."""
    writing = WRITING.get()
    if writing is not None and writing[0].active:
        fence, turn_id = writing
        await fence.wait(turn_id)
