"""Settings from the environment and an optional TOML file, validated at start.

Names are the environment variable names; in the TOML file the same names are
written in lower case (``openwebui_url = "…"``). The environment wins over the
file. Errors name the setting and never repeat its value: a bad value may be a
secret pasted into the wrong variable.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from bridge.policy import AccessPolicy, Limits

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ConfigError(Exception):
    """Invalid configuration; the message lists each bad setting by name."""


class EnvFirstSettings(BaseSettings):
    """Settings read from the environment first, then from values passed in (the file)."""

    # A variable set to "" counts as unset (Compose passes `${DISCORD_BOT_TOKEN:-}` so).
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first, then values passed in (the TOML file).
        return (env_settings, init_settings)


SettingsT = TypeVar("SettingsT", bound=EnvFirstSettings)

# A list of ids: comma-separated in the environment, a string or an array in TOML.
IdList = Annotated[list[str], NoDecode]


def _ids(name: str) -> Any:
    return Field(default_factory=list, validation_alias=AliasChoices(name, name.lower()))


class Settings(EnvFirstSettings):
    openwebui_url: str = Field(
        "http://localhost:8080", validation_alias=AliasChoices("OPENWEBUI_URL", "openwebui_url")
    )
    openwebui_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENWEBUI_API_KEY", "openwebui_api_key")
    )
    openwebui_email: str | None = Field(
        None, validation_alias=AliasChoices("OPENWEBUI_EMAIL", "openwebui_email")
    )
    openwebui_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENWEBUI_PASSWORD", "openwebui_password")
    )
    openwebui_model: str | None = Field(
        None, validation_alias=AliasChoices("OPENWEBUI_MODEL", "openwebui_model")
    )
    # Knowledge collections every answer may draw on (comma-separated ids).
    openwebui_knowledge_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("OPENWEBUI_KNOWLEDGE_IDS", "openwebui_knowledge_ids"),
    )
    openwebui_filter_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("OPENWEBUI_FILTER_IDS", "openwebui_filter_ids"),
    )
    # How answers are followed: live events need a JWT; "auto" uses them when possible.
    openwebui_follow: Literal["auto", "events", "polling"] = Field(
        "auto", validation_alias=AliasChoices("OPENWEBUI_FOLLOW", "openwebui_follow")
    )
    openwebui_poll_interval: float = Field(
        0.5,
        gt=0,
        le=30,
        validation_alias=AliasChoices("OPENWEBUI_POLL_INTERVAL", "openwebui_poll_interval"),
    )
    openwebui_request_timeout: float = Field(
        30.0,
        gt=0,
        validation_alias=AliasChoices("OPENWEBUI_REQUEST_TIMEOUT", "openwebui_request_timeout"),
    )
    openwebui_retries: int = Field(
        3, ge=0, le=10, validation_alias=AliasChoices("OPENWEBUI_RETRIES", "openwebui_retries")
    )
    bridge_answer_timeout: float = Field(
        300.0, gt=0, validation_alias=AliasChoices("BRIDGE_ANSWER_TIMEOUT", "bridge_answer_timeout")
    )
    bridge_max_concurrent_turns: int = Field(
        8,
        ge=1,
        le=256,
        validation_alias=AliasChoices("BRIDGE_MAX_CONCURRENT_TURNS", "bridge_max_concurrent_turns"),
    )
    # Several replicas on one PostgreSQL: how long a replica's turns stay its own after
    # its last renewal (a dead replica's answers are taken over after this long).
    bridge_lease_seconds: float = Field(
        30.0,
        ge=5,
        le=600,
        validation_alias=AliasChoices("BRIDGE_LEASE_SECONDS", "bridge_lease_seconds"),
    )
    bridge_title_generation: bool = Field(
        True, validation_alias=AliasChoices("BRIDGE_TITLE_GENERATION", "bridge_title_generation")
    )
    # How the model's reasoning shows in a thread: a "Thought for N seconds" line, or nothing.
    bridge_show_reasoning: Literal["summary", "hide"] = Field(
        "summary", validation_alias=AliasChoices("BRIDGE_SHOW_REASONING", "bridge_show_reasoning")
    )
    # The sources footer under answers Open WebUI grounds in documents or the web
    # (None: on, unless ``[defaults]`` says otherwise).
    bridge_show_sources: bool | None = Field(
        None, validation_alias=AliasChoices("BRIDGE_SHOW_SOURCES", "bridge_show_sources")
    )
    # How long delivery ids are remembered for de-duplication (platform retries come
    # within minutes; a week is generous). Seconds, or a number with s, m, h or d.
    bridge_event_retention: float = Field(
        7 * 86400.0,
        gt=0,
        validation_alias=AliasChoices("BRIDGE_EVENT_RETENTION", "bridge_event_retention"),
    )
    # Who may ask (bridge.policy): comma-separated ids; empty lists do not restrict.
    bridge_allowed_workspaces: IdList = _ids("BRIDGE_ALLOWED_WORKSPACES")
    bridge_allowed_channels: IdList = _ids("BRIDGE_ALLOWED_CHANNELS")
    bridge_denied_channels: IdList = _ids("BRIDGE_DENIED_CHANNELS")
    bridge_allowed_users: IdList = _ids("BRIDGE_ALLOWED_USERS")
    bridge_denied_users: IdList = _ids("BRIDGE_DENIED_USERS")
    bridge_allowed_roles: IdList = _ids("BRIDGE_ALLOWED_ROLES")
    bridge_allow_dms: bool = Field(
        True, validation_alias=AliasChoices("BRIDGE_ALLOW_DMS", "bridge_allow_dms")
    )
    bridge_allow_guests: bool = Field(
        False, validation_alias=AliasChoices("BRIDGE_ALLOW_GUESTS", "bridge_allow_guests")
    )
    bridge_allow_external: bool = Field(
        False, validation_alias=AliasChoices("BRIDGE_ALLOW_EXTERNAL", "bridge_allow_external")
    )
    bridge_user_rate_limit: int = Field(
        20,
        ge=0,
        validation_alias=AliasChoices("BRIDGE_USER_RATE_LIMIT", "bridge_user_rate_limit"),
    )
    bridge_max_question_chars: int = Field(
        32000,
        ge=1,
        validation_alias=AliasChoices("BRIDGE_MAX_QUESTION_CHARS", "bridge_max_question_chars"),
    )
    bridge_max_queued_per_thread: int = Field(
        5,
        ge=1,
        validation_alias=AliasChoices(
            "BRIDGE_MAX_QUEUED_PER_THREAD", "bridge_max_queued_per_thread"
        ),
    )
    bridge_max_file_mb: int = Field(
        20, ge=1, validation_alias=AliasChoices("BRIDGE_MAX_FILE_MB", "bridge_max_file_mb")
    )
    bridge_max_files: int = Field(
        10, ge=0, validation_alias=AliasChoices("BRIDGE_MAX_FILES", "bridge_max_files")
    )
    bridge_denied_notice: bool = Field(
        True, validation_alias=AliasChoices("BRIDGE_DENIED_NOTICE", "bridge_denied_notice")
    )
    # A file path (SQLite) or a postgresql:// URL (kept a string: a Path would fold its //).
    bridge_database: Path | str = Field(
        Path("./owui-bridge.db"),
        validation_alias=AliasChoices("BRIDGE_DATABASE", "bridge_database"),
    )
    bridge_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=AliasChoices("BRIDGE_LOG_LEVEL", "bridge_log_level")
    )
    # The process's one HTTP server: /healthz, /readyz, /metrics, Slack's HTTP mode.
    bridge_http_host: str = Field(
        "0.0.0.0", validation_alias=AliasChoices("BRIDGE_HTTP_HOST", "bridge_http_host")
    )
    bridge_http_port: int = Field(
        3000, ge=0, le=65535, validation_alias=AliasChoices("BRIDGE_HTTP_PORT", "bridge_http_port")
    )
    bridge_log_format: Literal["text", "json"] = Field(
        "text", validation_alias=AliasChoices("BRIDGE_LOG_FORMAT", "bridge_log_format")
    )

    @field_validator("openwebui_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator(
        "openwebui_knowledge_ids",
        "openwebui_filter_ids",
        "bridge_allowed_workspaces",
        "bridge_allowed_channels",
        "bridge_denied_channels",
        "bridge_allowed_users",
        "bridge_denied_users",
        "bridge_allowed_roles",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):  # TOML: Discord ids may be written as numbers
            return [str(part).strip() for part in value if str(part).strip()]
        return value

    @field_validator("bridge_database", mode="before")
    @classmethod
    def _database(cls, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
            return value
        return Path(value) if isinstance(value, str) else value

    @field_validator("bridge_event_retention", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip()[-1:].lower() in _UNITS:
            number, unit = value.strip()[:-1], value.strip()[-1].lower()
            try:
                return float(number) * _UNITS[unit]
            except ValueError:
                raise ValueError("must be seconds or a number with s, m, h or d") from None
        return value

    @field_validator("bridge_log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def access(self) -> AccessPolicy:
        return AccessPolicy(
            allowed_workspaces=frozenset(self.bridge_allowed_workspaces),
            allowed_channels=frozenset(self.bridge_allowed_channels),
            denied_channels=frozenset(self.bridge_denied_channels),
            allowed_users=frozenset(self.bridge_allowed_users),
            denied_users=frozenset(self.bridge_denied_users),
            allowed_roles=frozenset(self.bridge_allowed_roles),
            allow_dms=self.bridge_allow_dms,
            allow_guests=self.bridge_allow_guests,
            allow_external=self.bridge_allow_external,
        )

    @property
    def limits(self) -> Limits:
        return Limits(
            user_rate_limit=self.bridge_user_rate_limit,
            max_question_chars=self.bridge_max_question_chars,
            max_queued_per_thread=self.bridge_max_queued_per_thread,
            denied_notice=self.bridge_denied_notice,
        )

    @property
    def has_credentials(self) -> bool:
        return self.openwebui_api_key is not None or (
            self.openwebui_email is not None and self.openwebui_password is not None
        )


def read_config_file(config_file: Path | None) -> dict[str, Any]:
    """The TOML file's tables and values, read once per process (every component's
    settings and the channel rules come from this one reading); {} without a file."""
    if config_file is None:
        return {}
    try:
        return tomllib.loads(config_file.read_text())
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {config_file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {config_file} is not valid TOML: {exc}") from None


def read_settings(
    settings_cls: type[SettingsT], config: Mapping[str, Any] | None = None, **overrides: Any
) -> SettingsT:
    """Settings of any component (core, an adapter) from the environment and the
    config file's values (``read_config_file``); raise ``ConfigError`` naming every
    bad setting, never its value."""
    values: dict[str, Any] = {k.lower(): v for k, v in (config or {}).items()}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return settings_cls(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def load_settings(config: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    settings = read_settings(Settings, config, **overrides)
    if (settings.openwebui_email is None) != (settings.openwebui_password is None):
        raise ConfigError("OPENWEBUI_EMAIL and OPENWEBUI_PASSWORD must be set together")
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        lines.append(f"{name}: {error['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
