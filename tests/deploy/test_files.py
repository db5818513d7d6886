"""The deploy files as a platform team gets them: each passes its format's checker
(hadolint, the Compose Specification's schema, Kubernetes' own schemas in strict
mode), and the three agree with each other and with the bridge's settings."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from adapters.cli import SHUTDOWN_GRACE
from adapters.discord.settings import DiscordSettings
from adapters.slack.settings import SlackSettings
from bridge.channels import load_channels
from bridge.config import EnvFirstSettings, Settings, load_settings, read_settings
from tests.deploy import compose, dockerfile
from tests.harness.openwebui import VERSIONS

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
ENTRYPOINT = REPO / "deploy" / "docker" / "entrypoint.sh"
# The oldest Kubernetes the manifests claim, and the newest kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())


def _tool(name: str) -> str:
    """A command the dev extras install next to this Python."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[dev]'"
    return found


def _manifests() -> dict[str, dict[str, Any]]:
    return {
        path.name: yaml.safe_load(path.read_text())
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def _by_kind(kind: str) -> dict[str, Any]:
    (found,) = [m for m in _manifests().values() if m["kind"] == kind]
    return found


def _setting_names() -> set[str]:
    """Every environment variable the bridge reads (core, Slack, Discord)."""
    names: set[str] = set()
    classes: list[type[EnvFirstSettings]] = [Settings, SlackSettings, DiscordSettings]
    for cls in classes:
        for name, info in cls.model_fields.items():
            choices = getattr(info.validation_alias, "choices", [name])
            names.update(str(c).upper() for c in choices)
    return names


def _image() -> dockerfile.Image:
    return dockerfile.Image(Path("/"), dockerfile.parse(dockerfile.DOCKERFILE.read_text()))


# -- each file against its own checker -------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [_tool("hadolint"), "--no-color", str(dockerfile.DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hadolint ignore" not in dockerfile.DOCKERFILE.read_text()


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((REPO / "deploy" / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose.load())
    ]
    assert errors == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_follow_the_kubernetes_schemas(version: str) -> None:
    for name, manifest in _manifests().items():
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{name} (Kubernetes {version}): {list(exc.absolute_path)}: {exc.message}")


def test_kustomization_applies_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(_manifests())
    # The image name the Deployment uses is the one kustomization.yaml replaces.
    (container,) = _by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert [i["name"] for i in kustomization["images"]] == [container["image"]]


# -- the image ---------------------------------------------------------------------


def test_image_installs_in_a_build_stage_and_keeps_only_the_venv() -> None:
    build, final = dockerfile.parse(dockerfile.DOCKERFILE.read_text())
    assert build.base == final.base == "python:3.11-slim"
    assert any(re.search(r"pip\W*install", run) for run in dockerfile.run_lines(build))
    assert not any("pip" in run or "apt" in run for run in dockerfile.run_lines(final))
    copied_from_build = [c.args for c in final.all("COPY") if "--from=" in c.args]
    assert copied_from_build == ["--from=build /opt/venv /opt/venv"]
    assert final.last("USER").args.split(":")[0] == "10001"


@pytest.mark.parametrize("mounted", [True, False])
def test_entrypoint_reads_the_config_file_only_when_mounted(tmp_path: Path, mounted: bool) -> None:
    # A stand-in for the installed command, to see the arguments it gets.
    fake = tmp_path / "bin" / "owui-bridge"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    config = tmp_path / "bridge.toml"
    if mounted:
        config.write_text('openwebui_model = "m"\n')
    done = subprocess.run(
        [str(ENTRYPOINT), "run"],
        env={"PATH": f"{fake.parent}:/usr/bin:/bin", "BRIDGE_CONFIG_FILE": str(config)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == (["--config", str(config), "run"] if mounted else ["run"])


# -- the three agree ---------------------------------------------------------------


def test_compose_passes_only_real_settings_and_documents_every_variable() -> None:
    environment = compose.load()["services"]["bridge"]["environment"]
    assert set(environment) <= _setting_names()
    # deploy/.env.example names exactly what the Compose file reads from deploy/.env.
    assert sorted(compose.env_example_names()) == sorted(compose.variables(compose.load()))
    # Unfilled, the bridge gets the empty string, which it takes as unset.
    unfilled = compose.service_environment("bridge", {})
    assert unfilled["SLACK_BOT_TOKEN"] == unfilled["DISCORD_BOT_TOKEN"] == ""
    assert unfilled["OPENWEBUI_URL"] == "http://open-webui:8080"


def test_compose_runs_an_open_webui_release_the_suite_tests() -> None:
    image = compose.load()["services"]["open-webui"]["image"]
    name, _, tag = image.partition(":")
    assert name == "ghcr.io/open-webui/open-webui"
    assert tag.removeprefix("v") in VERSIONS


def test_kubernetes_secret_and_config_file_hold_real_settings() -> None:
    secret = _by_kind("Secret")["stringData"]
    assert set(secret) <= _setting_names()
    (toml_text,) = _by_kind("ConfigMap")["data"].values()
    config = tomllib.loads(toml_text)
    # Unknown keys would be ignored by the bridge: a typo here would go unnoticed there.
    top_level = {k for k, v in config.items() if not isinstance(v, dict | list)}
    assert {k.upper() for k in top_level} <= _setting_names()
    assert set(config) - top_level <= {"defaults", "channels"}
    settings = load_settings(config)
    read_settings(SlackSettings, config)
    read_settings(DiscordSettings, config)
    load_channels(settings, config)


def test_image_compose_and_kubernetes_agree_on_paths_ports_and_user() -> None:
    image = _image()
    image_env = image.container_env()
    database = Path(image_env["BRIDGE_DATABASE"])
    config_file = Path(image_env["BRIDGE_CONFIG_FILE"])
    final = image.final
    assert final.last("VOLUME").args == str(database.parent)
    port = int(final.last("EXPOSE").args)

    bridge = compose.load()["services"]["bridge"]
    assert f"bridge-data:{database.parent}" in bridge["volumes"]
    assert compose.service_environment("bridge", {})["BRIDGE_HTTP_PORT"] == str(port)

    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["data"] == str(database.parent)
    assert (
        volumes["data"]["persistentVolumeClaim"]["claimName"]
        == _by_kind("PersistentVolumeClaim")["metadata"]["name"]
    )
    assert mounts["config"] == str(config_file.parent)
    assert config_file.name in _by_kind("ConfigMap")["data"]
    assert volumes["config"]["configMap"]["name"] == _by_kind("ConfigMap")["metadata"]["name"]
    assert {"name": "BRIDGE_HTTP_PORT", "value": str(port)} in container["env"]
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (service_port,) = _by_kind("Service")["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    uid = int(final.last("USER").args.split(":")[0])
    # The volume's mount point belongs to the user the image runs as (a new named
    # volume takes its owner from it).
    assert any(f"chown {uid}:{uid} {database.parent}" in run for run in dockerfile.run_lines(final))
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == context["runAsGroup"] == context["fsGroup"] == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert mounts["tmp"] == "/tmp" and "emptyDir" in volumes["tmp"]


def test_one_replica_that_stops_before_the_next_starts() -> None:
    deployment = _by_kind("Deployment")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    assert _by_kind("PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_stopping_leaves_answers_under_way_their_grace_period() -> None:
    # Docker's default stop timeout (10 s) and Kubernetes' (30 s) would cut the drain short.
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > SHUTDOWN_GRACE
    grace = compose.load()["services"]["bridge"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > SHUTDOWN_GRACE


def test_secrets_stay_out_of_the_build_context_and_git() -> None:
    patterns = dockerfile.ignored_patterns()
    for secret in (".env", "deploy/.env", "owui-bridge.db", ".git/config"):
        assert dockerfile.is_ignored(PurePosixPath(secret), patterns), secret
    done = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/.env"], cwd=REPO, check=False, env=os.environ
    )
    assert done.returncode == 0, "deploy/.env (the tokens) must be ignored by git"
