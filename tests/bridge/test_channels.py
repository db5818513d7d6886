"""Per-channel rules from the TOML file: ``[defaults]``, ``[[channels]]`` keyed by
channel id, the environment winning over ``[defaults]``, a channel entry winning
field by field, and errors that name the entry and the field, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.channels import ChannelRules, Channels, load_channels
from bridge.config import ConfigError, load_settings, read_config_file

C1 = '[[channels]]\nid = "C1"\n'  # an entry, for fields to follow
ENV = ("OPENWEBUI_MODEL", "OPENWEBUI_KNOWLEDGE_IDS", "OPENWEBUI_FILTER_IDS")

TWO_CHANNELS = """
[defaults]
model = "default-model"
knowledge_ids = ["k-handbook"]
system_prompt = "You are the help desk of Example Ltd."
features = { web_search = true }
update_interval = 2

[[channels]]
id = "C0SUPPORT"
name = "support"
model = "support-model"
respond_to = "all"

[[channels]]
id = 123456789012345678
name = "help"
knowledge_ids = []
features = { code_interpreter = true }
respond_to = "off"
suggested_prompts = ["Reset my password", "Where is my invoice?"]
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def channels_from(tmp_path: Path, text: str) -> Channels:
    config = tmp_path / "bridge.toml"
    config.write_text(text)
    raw = read_config_file(config)
    return load_channels(load_settings(raw), raw)


def error_from(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        channels_from(tmp_path, text)
    return str(caught.value)


def test_without_a_file_every_channel_gets_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENWEBUI_MODEL", "env-model")
    monkeypatch.setenv("OPENWEBUI_KNOWLEDGE_IDS", "k1,k2")
    monkeypatch.setenv("OPENWEBUI_FILTER_IDS", "f1")

    channels = load_channels(load_settings())

    expected = ChannelRules(model="env-model", knowledge_ids=("k1", "k2"), filter_ids=("f1",))
    assert channels.defaults == expected
    assert channels.by_id == {}
    assert channels.rules("C-ANY") == expected
    assert expected.respond_to == "mentions"  # the bot answers mentions unless told otherwise


def test_a_channel_entry_wins_field_by_field(tmp_path: Path) -> None:
    channels = channels_from(tmp_path, TWO_CHANNELS)

    defaults = channels.defaults
    assert defaults == ChannelRules(
        model="default-model",
        knowledge_ids=("k-handbook",),
        system_prompt="You are the help desk of Example Ltd.",
        features={"web_search": True},
        update_interval=2.0,
    )
    support = channels.rules("C0SUPPORT")
    # Set by the entry…
    assert (support.model, support.respond_to) == ("support-model", "all")
    # …the rest inherited from [defaults].
    assert support.knowledge_ids == ("k-handbook",)
    assert support.system_prompt == defaults.system_prompt
    assert support.features == {"web_search": True}
    assert support.update_interval == 2.0

    help_desk = channels.rules("123456789012345678")  # a Discord id written as a number
    assert help_desk.model == "default-model"
    assert help_desk.knowledge_ids == ()  # an empty list switches the defaults' off
    assert help_desk.features == {"code_interpreter": True}  # replaced, not merged
    assert help_desk.respond_to == "off"
    assert help_desk.suggested_prompts == ("Reset my password", "Where is my invoice?")
    assert channels.names == {"C0SUPPORT": "support", "123456789012345678": "help"}
    assert channels.rules("C-OTHER") == defaults


def test_the_environment_wins_over_defaults_but_not_over_a_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENWEBUI_MODEL", "env-model")
    monkeypatch.setenv("OPENWEBUI_KNOWLEDGE_IDS", "k-env")
    monkeypatch.setenv("OPENWEBUI_FILTER_IDS", "f-env")

    channels = channels_from(tmp_path, TWO_CHANNELS)

    assert channels.defaults.model == "env-model"
    assert channels.defaults.knowledge_ids == ("k-env",)
    assert channels.defaults.filter_ids == ("f-env",)
    # What the environment does not set stays as [defaults] has it.
    assert channels.defaults.system_prompt == "You are the help desk of Example Ltd."
    assert channels.rules("C0SUPPORT").model == "support-model"
    assert channels.rules("C0SUPPORT").filter_ids == ("f-env",)
    assert channels.rules("123456789012345678").model == "env-model"
    assert channels.rules("123456789012345678").knowledge_ids == ()


def test_top_level_file_settings_win_over_defaults(tmp_path: Path) -> None:
    channels = channels_from(
        tmp_path, 'openwebui_model = "top-model"\n[defaults]\nmodel = "default-model"\n'
    )
    assert channels.defaults.model == "top-model"


@pytest.mark.parametrize(
    ("text", "named", "value"),
    [
        (
            C1 + '[[channels]]\nid = "C2"\nrespond_to = "sometimes"\n',
            ["[[channels]] #2", "respond_to"],
            "sometimes",
        ),
        (C1 + "update_interval = 0\n", ["[[channels]] #1", "update_interval"], ""),
        (C1 + "update_interval = 600\n", ["[[channels]] #1", "update_interval"], ""),
        ('[defaults]\nsystem_prompt = ["s3cr3t"]\n', ["[defaults]", "system_prompt"], "s3cr3t"),
        (C1 + 'features = "web_search"\n', ["#1", "features"], "web_search"),
        (C1 + 'knowledge_ids = "k1"\n', ["#1", "knowledge_ids"], ""),
    ],
)  # fmt: skip
def test_errors_name_the_entry_and_field_not_the_value(
    tmp_path: Path, text: str, named: list[str], value: str
) -> None:
    message = error_from(tmp_path, text)
    for part in named:
        assert part in message
    if value:
        assert value not in message


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    # A typo would otherwise leave the channel on the defaults without a word.
    message = error_from(tmp_path, C1 + 'modle = "support-model"\n')
    assert "[[channels]] #1" in message
    assert "modle" in message
    message = error_from(tmp_path, '[defaults]\nrespond = "all"\n')
    assert "[defaults]" in message and "respond" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (C1 + C1, "[[channels]] #2: channel C1 is configured twice"),
        # The same Discord channel once as a number and once as text.
        ('[[channels]]\nid = 42\n[[channels]]\nid = "42"\n', "#2: channel 42 is configured twice"),
        ('[[channels]]\nname = "support"\n', "[[channels]] #1: id is required"),
        ('channels = "C1"\n', "[[channels]]: must be an array of tables"),
        ("channels = [1]\n", "[[channels]] #1: must be a table"),
        ('defaults = "x"\n', "[defaults]: must be a table"),
    ],
)  # fmt: skip
def test_bad_channel_lists_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_from(tmp_path, text)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="--config"):
        load_channels(load_settings(), read_config_file(missing))


def test_sources_footer_on_by_default_off_by_environment_or_per_channel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (*ENV, "BRIDGE_SHOW_SOURCES"):
        monkeypatch.delenv(name, raising=False)
    raw = {"channels": [{"id": "C1", "show_sources": False}, {"id": "C2"}]}
    channels = load_channels(load_settings(), raw)
    assert channels.rules("C1").show_sources is False
    assert channels.rules("C2").show_sources is True
    assert channels.rules("elsewhere").show_sources is True
    monkeypatch.setenv("BRIDGE_SHOW_SOURCES", "false")
    raw = {"channels": [{"id": "C1", "show_sources": True}, {"id": "C2"}]}
    channels = load_channels(load_settings(), raw)
    assert channels.rules("elsewhere").show_sources is False
    assert channels.rules("C2").show_sources is False
    assert channels.rules("C1").show_sources is True
