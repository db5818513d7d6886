"""The PostgreSQL variants of the deploy files: Compose's profile ``postgres`` and the
Kubernetes overlay ``deploy/kubernetes-postgres``. Each runs ONE bridge on its
database (several on one database are not supported yet), and the SQLite setups
stay as they are."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bridge.config import load_settings
from storage.postgres import is_postgres
from tests.deploy import compose, kustomize
from tests.deploy.test_files import KUBERNETES_VERSIONS

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy" / "kubernetes-postgres"
FILLED = {"POSTGRES_PASSWORD": "Zq81Wd4"}


def _profile(name: str) -> set[str]:
    services = compose.load()["services"]
    return {s for s, spec in services.items() if name in spec.get("profiles", [])}


def _overlay(kind: str) -> list[dict[str, Any]]:
    return [m for m in kustomize.build(OVERLAY) if m["kind"] == kind]


# -- Compose -----------------------------------------------------------------------


def test_compose_profile_postgres_runs_postgresql_and_one_bridge_on_it() -> None:
    assert _profile("postgres") == {"postgres", "bridge-postgres"}
    services = compose.load()["services"]
    postgres, bridge = services["postgres"], services["bridge-postgres"]
    # The official image, a pinned major release, its data on a named volume.
    assert re.fullmatch(r"postgres:\d+", postgres["image"])
    (volume,) = postgres["volumes"]
    assert volume.partition(":")[0] in compose.load()["volumes"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert bridge["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert bridge["deploy"]["replicas"] == 1 and bridge.get("scale", 1) == 1
    # No SQLite volume: the bridge keeps nothing on /data.
    assert not any(":/data" in v for v in bridge.get("volumes", []))

    # The bridge gets a postgresql:// URL with the password the database was given.
    for values, user, db in [
        (FILLED, "owui_bridge", "owui_bridge"),
        ({**FILLED, "POSTGRES_USER": "u1", "POSTGRES_DB": "d1"}, "u1", "d1"),
    ]:
        database = compose.service_environment("postgres", values)
        assert database["POSTGRES_PASSWORD"] == FILLED["POSTGRES_PASSWORD"]
        assert (database["POSTGRES_USER"], database["POSTGRES_DB"]) == (user, db)
        url = compose.service_environment("bridge-postgres", values)["BRIDGE_DATABASE"]
        assert url == f"postgresql://{user}:{FILLED['POSTGRES_PASSWORD']}@postgres:5432/{db}"
        settings = load_settings({"bridge_database": url})
        assert is_postgres(str(settings.bridge_database))
    # Apart from the database, the same bridge as without the profile.
    same = compose.service_environment("bridge", FILLED)
    assert compose.service_environment("bridge-postgres", FILLED) == {
        **same,
        "BRIDGE_DATABASE": "postgresql://owui_bridge:Zq81Wd4@postgres:5432/owui_bridge",
    }


def test_compose_without_a_profile_is_the_sqlite_setup() -> None:
    services = compose.load()["services"]
    unprofiled = {s for s, spec in services.items() if not spec.get("profiles")}
    assert unprofiled == {"open-webui", "bridge"}
    bridge = services["bridge"]
    assert "BRIDGE_DATABASE" not in bridge["environment"]  # the image's /data file
    assert "bridge-data:/data" in bridge["volumes"]
    assert set(bridge["depends_on"]) == {"open-webui"}


def test_compose_file_holds_no_password_or_token() -> None:
    # Unfilled, every secret the file passes on is empty: none is written in it.
    for service in compose.load()["services"]:
        for name, value in compose.service_environment(service, {}).items():
            if re.search(r"(PASSWORD|TOKEN|SECRET|API_KEY)$", name):
                assert value == "", f"{service}: {name}"
    unfilled = compose.service_environment("bridge-postgres", {})["BRIDGE_DATABASE"]
    assert unfilled == "postgresql://owui_bridge:@postgres:5432/owui_bridge"
    assert "POSTGRES_PASSWORD" in compose.env_example_names()
    assert "POSTGRES_PASSWORD=\n" in compose.ENV_EXAMPLE.read_text()


# -- Kubernetes ---------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_postgres_overlay_follows_the_kubernetes_schemas(version: str) -> None:
    for manifest in kustomize.build(OVERLAY):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except jsonschema.ValidationError as exc:
            name = f"{manifest['kind']} {manifest['metadata']['name']}"
            pytest.fail(f"{name} (Kubernetes {version}): {list(exc.absolute_path)}: {exc.message}")


def test_postgres_overlay_runs_one_bridge_with_the_database_url_from_a_secret() -> None:
    assert _overlay("PersistentVolumeClaim") == []
    (deployment,) = _overlay("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert set(env["BRIDGE_DATABASE"]["valueFrom"]) == {"secretKeyRef"}
    assert "value" not in env["BRIDGE_DATABASE"]
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/config", "/tmp"}
    # The rest is the SQLite setup's: its Secret, ConfigMap and Service.
    base = {
        (m["kind"], m["metadata"]["name"]) for m in kustomize.build(REPO / "deploy" / "kubernetes")
    }
    built = {(m["kind"], m["metadata"]["name"]) for m in kustomize.build(OVERLAY)}
    assert built == base - {("PersistentVolumeClaim", "owui-bridge-data")}
    # The patch files say why there is one replica.
    assert "leases" in (OVERLAY / "deployment.yaml").read_text()
    assert yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())["resources"] == [
        "../kubernetes"
    ]
