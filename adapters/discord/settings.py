"""The Discord adapter's own settings (environment or the ``--config`` TOML file)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator

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

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None
