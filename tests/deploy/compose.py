"""deploy/compose.yaml read as Compose reads it: YAML, then ``${NAME:-default}``
interpolation from the variables a user puts in ``deploy/.env``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.yaml"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"

# ${NAME:-default}, ${NAME-default}, ${NAME}, $NAME, and $$ (a literal $).
_VARIABLE = re.compile(r"\$(?:\$|\{(\w+)(?:(:?-)([^}]*))?\}|(\w+))")
_OTHER = re.compile(r"\$\{[^}]*[?+][^}]*\}")  # ${NAME:?error}, ${NAME:+alt}: not used here


def load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def variables(node: Any) -> set[str]:
    """The names the values in ``node`` (the loaded file, or part of it) interpolate."""
    if isinstance(node, dict):
        return set().union(*(variables(v) for v in [*node.keys(), *node.values()]))
    if isinstance(node, list):
        return set().union(*(variables(v) for v in node))
    if isinstance(node, str):
        return {m.group(1) or m.group(4) for m in _VARIABLE.finditer(node) if m.group(0) != "$$"}
    return set()


def interpolate(value: str, values: dict[str, str]) -> str:
    assert not _OTHER.search(value), f"not understood here: {value}"

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        given = values.get(name)
        if match.group(2) == ":-":
            return given if given else match.group(3)
        if match.group(2) == "-":
            return given if given is not None else match.group(3)
        return given or ""

    return _VARIABLE.sub(one, value)


def service_environment(service: str, values: dict[str, str]) -> dict[str, str]:
    """The environment Compose gives ``service``'s container, with ``values`` as the
    user's ``.env`` (names not in it are unset)."""
    environment = load()["services"][service].get("environment", {})
    assert isinstance(environment, dict), "environment: use the mapping form"
    return {name: interpolate(str(value), values) for name, value in environment.items()}


def env_example_names() -> list[str]:
    names = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.partition("=")[0])
    return names
