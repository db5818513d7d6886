"""How each platform channel behaves: model, knowledge, filters, system prompt,
features, update pace, and what the bot answers there.

From the TOML config file: a ``[defaults]`` table and ``[[channels]]`` entries
keyed by channel id (Slack channel id, Discord channel id; a thread follows its
parent channel). Settings the environment gives (``OPENWEBUI_MODEL``,
``OPENWEBUI_KNOWLEDGE_IDS``, ``OPENWEBUI_FILTER_IDS``) win over ``[defaults]``;
a channel entry wins over both for its channel, field by field.

    [defaults]
    system_prompt = "You are the help desk assistant of Example Ltd."

    [[channels]]
    id = "C0SUPPORT"
    model = "support-model"
    respond_to = "all"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.config import ConfigError, Settings

RespondTo = Literal["mentions", "all", "off"]


class ChannelEntry(BaseModel):
    """One ``[[channels]]`` entry (or ``[defaults]``) as written: unset fields inherit."""

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    name: str = ""  # for people reading the config and ``check``; not used to match
    model: str | None = None
    knowledge_ids: list[str] | None = None
    filter_ids: list[str] | None = None
    system_prompt: str | None = None
    features: dict[str, bool] | None = None
    update_interval: float | None = Field(None, gt=0, le=60)
    respond_to: RespondTo | None = None
    suggested_prompts: list[str] | None = None
    show_sources: bool | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value  # Discord ids as numbers


@dataclass(frozen=True)
class ChannelRules:
    """The effective behaviour of one channel."""

    model: str = ""
    knowledge_ids: tuple[str, ...] = ()
    filter_ids: tuple[str, ...] = ()
    system_prompt: str = ""
    features: dict[str, bool] = field(default_factory=dict)
    update_interval: float | None = None  # None: the platform's own interval
    respond_to: RespondTo = "mentions"
    suggested_prompts: tuple[str, ...] = ()
    show_sources: bool = True  # the sources footer under answers

    def merged(self, entry: ChannelEntry) -> ChannelRules:
        """These rules with what ``entry`` sets."""
        values: dict[str, Any] = {}
        for name in ("model", "system_prompt", "update_interval", "respond_to", "show_sources"):
            value = getattr(entry, name)
            if value is not None:
                values[name] = value
        for name in ("knowledge_ids", "filter_ids", "suggested_prompts"):
            value = getattr(entry, name)
            if value is not None:
                values[name] = tuple(value)
        if entry.features is not None:
            values["features"] = dict(entry.features)
        return replace(self, **values)


@dataclass(frozen=True)
class Channels:
    """The defaults and the per-channel rules; ``rules(channel)`` for any channel."""

    defaults: ChannelRules = field(default_factory=ChannelRules)
    by_id: dict[str, ChannelRules] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # id → name as configured

    def rules(self, channel: str) -> ChannelRules:
        return self.by_id.get(channel, self.defaults)


def load_channels(settings: Settings, raw: Mapping[str, Any] | None = None) -> Channels:
    """The channel rules from ``settings`` (the environment) and the config file's
    tables (``bridge.config.read_config_file``). Raises ``ConfigError`` naming the
    bad entry and field, never a value."""
    raw = raw or {}
    defaults_entry = _entry(raw.get("defaults") or {}, "[defaults]")
    channel_entries = raw.get("channels") or []
    if not isinstance(channel_entries, list):
        raise ConfigError("[[channels]]: must be an array of tables")

    defaults = ChannelRules().merged(defaults_entry)
    # The environment (or top-level file settings) wins over [defaults].
    if settings.openwebui_model:
        defaults = replace(defaults, model=settings.openwebui_model)
    if settings.openwebui_knowledge_ids:
        defaults = replace(defaults, knowledge_ids=tuple(settings.openwebui_knowledge_ids))
    if settings.openwebui_filter_ids:
        defaults = replace(defaults, filter_ids=tuple(settings.openwebui_filter_ids))
    if settings.bridge_show_sources is not None:
        defaults = replace(defaults, show_sources=settings.bridge_show_sources)

    by_id: dict[str, ChannelRules] = {}
    names: dict[str, str] = {}
    for index, item in enumerate(channel_entries):
        where = f"[[channels]] #{index + 1}"
        entry = _entry(item, where)
        if not entry.id:
            raise ConfigError(f"{where}: id is required")
        if entry.id in by_id:
            raise ConfigError(f"{where}: channel {entry.id} is configured twice")
        by_id[entry.id] = defaults.merged(entry)
        names[entry.id] = entry.name
    return Channels(defaults, by_id, names)


def _entry(item: Any, where: str) -> ChannelEntry:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be a table")
    try:
        return ChannelEntry(**item)
    except ValidationError as exc:
        fields = [
            f"{where}: {'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(fields)) from None
