"""What the bridge is doing, for Prometheus (``GET /metrics``). Labels are bounded:
platforms, outcomes, reasons, HTTP methods and API method names, never user text
or ids."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds: a first word in well under a second, an answer in up to minutes.
_FIRST_TEXT_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)
_ANSWER_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 180, 300, 600)

TURNS = Counter(
    "owui_bridge_turns", "Turns ended, by platform and outcome", ["platform", "outcome"]
)
REFUSALS = Counter(
    "owui_bridge_refusals", "Questions and 🔁 not taken, by reason", ["platform", "reason"]
)
QUEUED = Gauge("owui_bridge_questions_queued", "Questions taken and waiting for their turn")
LEASES = Gauge(
    "owui_bridge_leases_held", "Turns this process holds the lease of (running or next up)"
)
TAKEN_OVER = Counter(
    "owui_bridge_turns_taken_over",
    "Turns resumed that another bridge process was running (it died, stalled or shut down)",
)
ANSWERING = Gauge("owui_bridge_answers_in_progress", "Answers being written now")
FIRST_TEXT = Histogram(
    "owui_bridge_time_to_first_text_seconds",
    "From a turn's start to the first text offered to the thread",
    ["platform"],
    buckets=_FIRST_TEXT_BUCKETS,
)
ANSWER = Histogram(
    "owui_bridge_answer_seconds",
    "From a turn's start to its end, whatever the outcome",
    ["platform"],
    buckets=_ANSWER_BUCKETS,
)
OPENWEBUI_REQUESTS = Counter(
    "owui_bridge_openwebui_requests",
    "Requests to Open WebUI by HTTP method and outcome (ok, client_error, server_error, "
    "rate_limited, unreachable)",
    ["method", "outcome"],
)
OPENWEBUI_RETRIES = Counter(
    "owui_bridge_openwebui_retries", "Open WebUI requests sent again, by reason", ["reason"]
)
PLATFORM_CALLS = Counter(
    "owui_bridge_platform_calls",
    "Calls to Slack's and Discord's APIs by method and outcome (ok, rate_limited, error)",
    ["platform", "method", "outcome"],
)
PLATFORM_RATE_LIMITS = Counter(
    "owui_bridge_platform_rate_limits",
    "429 answers from Slack and Discord, waited out or not, by method",
    ["platform", "method"],
)


def status_outcome(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    return "client_error" if status >= 400 else "ok"
