"""What the access check adds to each message: ``Admission.check`` (the policy,
the text bounds and the rate limit) for a typical and a busy configuration.
Platform look-ups are cached by the adapters and measured by the platform benches.

Usage:  .venv/bin/python -m bench.policy [--messages 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bridge.admission import Admission
from bridge.events import PlatformEvent, ThreadKey
from bridge.policy import AccessPolicy, Asker, Limits, UserKind

TYPICAL = AccessPolicy(allowed_channels=frozenset({"C1", "C2"}), denied_users=frozenset({"U9"}))
BUSY = AccessPolicy(
    allowed_workspaces=frozenset(f"T{n}" for n in range(10)) | {"T1"},
    allowed_channels=frozenset(f"C{n}" for n in range(500)),
    denied_channels=frozenset(f"D{n}" for n in range(100)),
    allowed_users=frozenset(f"U{n}" for n in range(2000)),
    denied_users=frozenset(f"X{n}" for n in range(100)),
    allowed_roles=frozenset(f"R{n}" for n in range(50)),
)


def measure(policy: AccessPolicy, messages: int) -> list[float]:
    admission = Admission(policy, Limits(user_rate_limit=10**9))
    samples = []
    for n in range(messages):
        user = f"U{n % 1000}"
        event = PlatformEvent(
            event_id=f"e{n}",
            thread=ThreadKey("slack", "T1", "C1", f"t{n}"),
            message_id=f"m{n}",
            author_id=user,
            author_name="",
            text="How do I reset my password? " * 10,
        )
        asker = Asker("T1", "C1", user, UserKind.MEMBER, frozenset({"R7"}))
        started = time.perf_counter_ns()
        verdict = admission.check(event, asker)
        if verdict.refusal is None:
            admission.taken(event)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    for name, policy in (("typical", TYPICAL), ("busy", BUSY)):
        samples = measure(policy, args.messages)
        quantiles = statistics.quantiles(samples, n=100)
        print(
            f"policy check ({name}): median {statistics.median(samples):.1f} µs,"
            f" p99 {quantiles[98]:.1f} µs over {args.messages} messages"
        )


if __name__ == "__main__":
    main()
