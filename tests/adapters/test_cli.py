"""``owui-bridge`` start-up: settings come from one reading of the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters import cli


def test_the_config_file_is_read_once_for_every_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('openwebui_model = "from-file"\n\n[defaults]\nrespond_to = "all"\n')
    reads: list[Path] = []
    read_text = Path.read_text

    def counted(self: Path, *args: Any, **kwargs: Any) -> str:
        reads.append(self)
        return read_text(self, *args, **kwargs)

    seen: dict[str, Any] = {}

    async def check(settings: Any, slack: Any, discord: Any, channels: Any) -> int:
        seen.update(model=settings.openwebui_model, respond_to=channels.defaults.respond_to)
        return 0

    monkeypatch.setattr(Path, "read_text", counted)
    monkeypatch.setattr(cli, "_check", check)
    assert cli.main(["--config", str(config), "check"]) == 0
    assert seen == {"model": "from-file", "respond_to": "all"}
    assert reads.count(config) == 1
