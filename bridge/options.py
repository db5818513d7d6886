"""What the operator decides about the core: default model, timeouts, concurrency,
reasoning display, channel rules, access and limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge import display
from bridge.channels import Channels
from bridge.leases import LeaseTimes
from bridge.policy import AccessPolicy, Limits


@dataclass(frozen=True)
class CoreOptions:
    default_model: str
    answer_timeout: float = 300.0
    max_concurrent_turns: int = 8
    title_generation: bool = True
    poll_interval: float = 0.5
    reasoning: display.Reasoning = "summary"
    # Per-channel model, knowledge, filters, system prompt, features, update pace.
    channels: Channels = field(default_factory=Channels)
    access: AccessPolicy = field(default_factory=AccessPolicy)
    limits: Limits = field(default_factory=Limits)
    # Files sent with a question: size of one (MB) and how many per message.
    max_file_mb: int = 20
    max_files: int = 10
    # Several processes on one database: how long a turn's lease lasts, how often renewed.
    leases: LeaseTimes = field(default_factory=LeaseTimes)
