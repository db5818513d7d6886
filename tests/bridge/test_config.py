"""Settings: defaults, the TOML file, env precedence, and errors that never echo secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.discord.settings import DiscordSettings
from bridge.config import ConfigError, load_settings, read_config_file
from bridge.policy import AccessPolicy, Limits

ALL_VARS = [
    "OPENWEBUI_URL", "OPENWEBUI_API_KEY", "OPENWEBUI_EMAIL", "OPENWEBUI_PASSWORD",
    "OPENWEBUI_MODEL", "OPENWEBUI_KNOWLEDGE_IDS", "BRIDGE_DATABASE", "BRIDGE_LOG_LEVEL",
    "BRIDGE_ANSWER_TIMEOUT", "OPENWEBUI_FOLLOW",
]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.openwebui_url == "http://localhost:8080"
    assert settings.bridge_database == Path("owui-bridge.db")
    assert settings.bridge_log_level == "INFO"
    assert not settings.has_credentials


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENWEBUI_URL", "https://owui.example/")
    monkeypatch.setenv("OPENWEBUI_API_KEY", "sk-abc")
    monkeypatch.setenv("OPENWEBUI_KNOWLEDGE_IDS", "k1, k2")
    monkeypatch.setenv("BRIDGE_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.openwebui_url == "https://owui.example"
    assert settings.openwebui_api_key is not None
    assert settings.openwebui_api_key.get_secret_value() == "sk-abc"
    assert settings.openwebui_knowledge_ids == ["k1", "k2"]
    assert settings.bridge_log_level == "DEBUG"
    assert "sk-abc" not in repr(settings)


def test_toml_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('openwebui_model = "from-file"\nOPENWEBUI_URL = "http://file:1"\n')
    monkeypatch.setenv("OPENWEBUI_URL", "http://env:2")
    settings = load_settings(read_config_file(config))
    assert settings.openwebui_model == "from-file"
    assert settings.openwebui_url == "http://env:2"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OPENWEBUI_URL": "sk-secret-in-wrong-place"}, "OPENWEBUI_URL"),
        ({"BRIDGE_ANSWER_TIMEOUT": "sk-secret-in-wrong-place"}, "BRIDGE_ANSWER_TIMEOUT"),
        ({"OPENWEBUI_FOLLOW": "sk-secret-in-wrong-place"}, "OPENWEBUI_FOLLOW"),
        ({"OPENWEBUI_EMAIL": "a@b.c"}, "OPENWEBUI_PASSWORD"),
    ],
)
def test_errors_name_the_setting_not_the_value(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value)
    assert "sk-secret" not in str(caught.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(read_config_file(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("openwebui_url = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(read_config_file(bad))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("604800", 604800.0), ("7d", 604800.0), ("12h", 43200.0), ("90m", 5400.0), ("30s", 30.0)],
)
def test_event_retention_takes_durations(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    assert load_settings().bridge_event_retention == 7 * 86400  # the default: a week
    monkeypatch.setenv("BRIDGE_EVENT_RETENTION", value)
    assert load_settings().bridge_event_retention == seconds


def test_bad_retention_and_reasoning_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_EVENT_RETENTION", "soon")
    monkeypatch.setenv("BRIDGE_SHOW_REASONING", "everything")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "BRIDGE_EVENT_RETENTION" in str(info.value)
    assert "BRIDGE_SHOW_REASONING" in str(info.value)


def test_access_settings_default_to_members_anywhere() -> None:
    settings = load_settings()
    assert settings.access == AccessPolicy()
    assert settings.limits == Limits(
        user_rate_limit=20, max_question_chars=32000, max_queued_per_thread=5, denied_notice=True
    )


def test_access_settings_from_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "bridge.toml"
    # Discord ids written as TOML numbers are ids all the same.
    config.write_text(
        "bridge_allowed_roles = [123456789012345678, 'S0ABC']\n"
        'bridge_allowed_channels = "C1, C2"\n'
        "bridge_allow_guests = true\n"
    )
    monkeypatch.setenv("BRIDGE_DENIED_USERS", " U9 ,,U8")
    monkeypatch.setenv("BRIDGE_ALLOW_DMS", "false")
    monkeypatch.setenv("BRIDGE_USER_RATE_LIMIT", "0")
    settings = load_settings(read_config_file(config))
    assert settings.access == AccessPolicy(
        allowed_channels=frozenset({"C1", "C2"}),
        denied_users=frozenset({"U9", "U8"}),
        allowed_roles=frozenset({"123456789012345678", "S0ABC"}),
        allow_dms=False,
        allow_guests=True,
    )
    assert settings.limits.user_rate_limit == 0


def test_limits_must_be_sensible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_MAX_QUEUED_PER_THREAD", "0")
    monkeypatch.setenv("BRIDGE_USER_RATE_LIMIT", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "BRIDGE_MAX_QUEUED_PER_THREAD" in str(caught.value)
    assert "BRIDGE_USER_RATE_LIMIT" in str(caught.value)


def test_a_variable_set_to_nothing_counts_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Compose passes `${DISCORD_BOT_TOKEN:-}`: an empty token must not turn Discord on,
    # and an empty variable must not hide the file's value.
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "")
    monkeypatch.setenv("OPENWEBUI_MODEL", "")
    config = tmp_path / "bridge.toml"
    config.write_text('openwebui_model = "from-file"\n')
    assert not DiscordSettings().enabled
    assert load_settings(read_config_file(config)).openwebui_model == "from-file"


@pytest.mark.parametrize(
    "value",
    ["postgresql://bridge:pw@db.internal:5432/owui", "postgres://bridge@db:5432/owui?ssl=require"],
)
def test_a_database_url_is_kept_whole(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("BRIDGE_DATABASE", value)
    assert str(load_settings().bridge_database) == value  # not folded to a path


def test_a_database_path_stays_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_DATABASE", "/data/owui-bridge.db")
    assert load_settings().bridge_database == Path("/data/owui-bridge.db")
