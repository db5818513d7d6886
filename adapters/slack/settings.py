"""The Slack adapter's own settings (environment or the ``--config`` TOML file)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from bridge.config import EnvFirstSettings


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class SlackSettings(EnvFirstSettings):
    bot_token: SecretStr | None = Field(None, validation_alias=_alias("SLACK_BOT_TOKEN"))
    # With an app-level token the adapter uses Socket Mode; otherwise the HTTP Events API.
    app_token: SecretStr | None = Field(None, validation_alias=_alias("SLACK_APP_TOKEN"))
    signing_secret: SecretStr | None = Field(None, validation_alias=_alias("SLACK_SIGNING_SECRET"))
    api_url: str = Field("https://slack.com/api/", validation_alias=_alias("SLACK_API_URL"))
    # Seconds between two edits of one message in the post+update fallback.
    update_interval: float = Field(1.0, ge=0, validation_alias=_alias("SLACK_UPDATE_INTERVAL"))
    native_streaming: bool = Field(True, validation_alias=_alias("SLACK_NATIVE_STREAMING"))
    # Bridge processes of this app sharing Slack's per-workspace limits: each takes 1/N.
    replicas: int = Field(1, ge=1, le=64, validation_alias=_alias("BRIDGE_REPLICAS"))

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None

    def problems(self) -> list[str]:
        if not self.enabled:
            return []
        if not self.socket_mode and self.signing_secret is None:
            return ["SLACK_SIGNING_SECRET is required without SLACK_APP_TOKEN (HTTP mode)"]
        return []
