"""The Discord adapter's own settings (environment or the ``--config`` TOML file)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from bridge.config import EnvFirstSettings

DISCORD_API = "https://discord.com/api/v10"


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class DiscordSettings(EnvFirstSettings):
    bot_token: SecretStr | None = Field(None, validation_alias=_alias("DISCORD_BOT_TOKEN"))
    # REST base and gateway: Discord's own unless a proxy or a local test server is used.
    api_url: str = Field(DISCORD_API, validation_alias=_alias("DISCORD_API_URL"))
    gateway_url: str | None = Field(None, validation_alias=_alias("DISCORD_GATEWAY_URL"))
    # Seconds between two edits of one message while an answer streams in.
    update_interval: float = Field(1.0, ge=0, validation_alias=_alias("DISCORD_UPDATE_INTERVAL"))
    # Sharding (Discord's gateway split by guild): the bot's total number of shards, and
    # which of them this process holds (comma-separated; all of them when unset).
    # Unset: one gateway connection, no sharding.
    # Bridge processes of this bot sharing Discord's global REST limit: each takes 1/N.
    replicas: int = Field(1, ge=1, le=64, validation_alias=_alias("BRIDGE_REPLICAS"))
    shard_count: int | None = Field(None, ge=1, validation_alias=_alias("DISCORD_SHARD_COUNT"))
    shard_ids: Annotated[list[int] | None, NoDecode] = Field(
        None, validation_alias=_alias("DISCORD_SHARD_IDS")
    )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("gateway_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not all(part.isdigit() for part in parts):
                raise ValueError("must be shard numbers separated by commas, e.g. 0,1")
            return [int(part) for part in parts]
        return value

    @field_validator("shard_ids")
    @classmethod
    def _held(cls, value: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if value is None:
            return None
        count = info.data.get("shard_count")
        if count is None:
            raise ValueError("needs DISCORD_SHARD_COUNT (the bot's total number of shards)")
        if not value:
            raise ValueError("names no shard")
        if len(set(value)) != len(value):
            raise ValueError("names a shard twice")
        beyond = [shard for shard in value if not 0 <= shard < count]
        if beyond:
            raise ValueError(
                f"with DISCORD_SHARD_COUNT={count} the shards are 0 to {count - 1}; "
                f"not {', '.join(map(str, beyond))}"
            )
        return sorted(value)

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None

    @property
    def held_shards(self) -> list[int] | None:
        """The shards this process connects, or None: not sharded (one connection)."""
        if self.shard_count is None:
            return None
        return list(self.shard_ids) if self.shard_ids is not None else list(range(self.shard_count))
