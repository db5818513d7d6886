"""The PostgreSQL variants of the deploy files: Compose's profile ``postgres`` and the
Kubernetes overlay ``deploy/kubernetes-postgres``. Each runs TWO bridge replicas
on one database (Compose behind an nginx load balancer for Slack's HTTP mode), and
the SQLite setups stay as they are."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from adapters.cli import SHUTDOWN_GRACE
from adapters.discord.settings import DiscordSettings
from adapters.slack.settings import SlackSettings
from bridge.config import load_settings
from storage.postgres import is_postgres
from tests.deploy import compose, kustomize, nginx
from tests.deploy.test_files import KUBERNETES_VERSIONS

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy" / "kubernetes-postgres"
FILLED = {"POSTGRES_PASSWORD": "Zq81Wd4"}
REPLICA_PORT = 3000  # the port each replica listens on inside its container


def _profile(name: str) -> set[str]:
    services = compose.load()["services"]
    return {s for s, spec in services.items() if name in spec.get("profiles", [])}


def _overlay(kind: str) -> list[dict[str, Any]]:
    return [m for m in kustomize.build(OVERLAY) if m["kind"] == kind]


# -- Compose -----------------------------------------------------------------------


def test_compose_profile_postgres_runs_postgresql_and_two_bridges_on_it() -> None:
    assert _profile("postgres") == {"postgres", "bridge-postgres", "bridge-lb"}
    services = compose.load()["services"]
    postgres, bridge = services["postgres"], services["bridge-postgres"]
    # The official image, a pinned major release, its data on a named volume.
    assert re.fullmatch(r"postgres:\d+", postgres["image"])
    (volume,) = postgres["volumes"]
    assert volume.partition(":")[0] in compose.load()["volumes"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert bridge["depends_on"]["postgres"] == {"condition": "service_healthy"}
    # Two replicas of one service: one name (Docker's DNS gives each replica's address).
    # BRIDGE_REPLICAS sets their number and tells each its share of the API limits.
    assert "scale" not in bridge
    for values, replicas in [({}, "2"), ({"BRIDGE_REPLICAS": "3"}, "3")]:
        assert compose.interpolate(bridge["deploy"]["replicas"], values) == replicas
        environment = compose.service_environment("bridge-postgres", values)
        assert environment["BRIDGE_REPLICAS"] == replicas
        assert SlackSettings.model_validate(environment).replicas == int(replicas)
        assert DiscordSettings.model_validate(environment).replicas == int(replicas)
    assert "container_name" not in bridge
    # No host port (two replicas could not share it) and no SQLite volume.
    assert bridge["ports"] == []
    assert not any(":/data" in v for v in bridge.get("volumes", []))

    # Each replica gets a postgresql:// URL with the password the database was given.
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
    # Apart from the database and the port inside the container (what the load
    # balancer sends to, whatever host port deploy/.env publishes), the same bridge.
    values = {**FILLED, "BRIDGE_HTTP_PORT": "3999"}
    same = compose.service_environment("bridge", values)
    assert compose.service_environment("bridge-postgres", values) == {
        **same,
        "BRIDGE_HTTP_PORT": str(REPLICA_PORT),
        "BRIDGE_REPLICAS": "2",
        "BRIDGE_DATABASE": "postgresql://owui_bridge:Zq81Wd4@postgres:5432/owui_bridge",
    }


def test_each_replica_checks_its_own_readiness_and_stops_gracefully() -> None:
    bridge = compose.load()["services"]["bridge-postgres"]
    # The health check runs in each replica's container, on that replica's own port.
    command = " ".join(bridge["healthcheck"]["test"])
    assert "http://127.0.0.1:%s/readyz" in command and "BRIDGE_HTTP_PORT" in command
    # Docker's default stop timeout (10 s) would cut the drain short.
    grace = bridge["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > SHUTDOWN_GRACE


def test_the_load_balancer_round_robins_over_the_replicas_on_their_port() -> None:
    services = compose.load()["services"]
    lb = services["bridge-lb"]
    assert re.fullmatch(r"nginx:1\.(\d+)-alpine", lb["image"])
    # nginx 1.27.3 and later re-resolve an upstream's name (``resolve``): replicas
    # that restart or are scaled are found.
    assert int(lb["image"].split(".")[1].split("-")[0]) >= 28
    assert lb["depends_on"] == {"bridge-postgres": {"condition": "service_started"}}
    assert "profiles" in lb and lb["restart"] == "unless-stopped"
    (mount,) = lb["volumes"]
    source, target, mode = mount.split(":")
    assert (compose.COMPOSE.parent / source).resolve() == nginx.CONF
    assert (target, mode) == ("/etc/nginx/conf.d/default.conf", "ro")

    site = nginx.parse(nginx.CONF.read_text())
    (server,) = site.all("server")
    (listen,) = server.all("listen")
    # Published on the host port deploy/.env names, as the SQLite bridge is.
    (published,) = lb["ports"]
    assert compose.interpolate(published, {}) == f"3000:{listen.args[0]}"
    assert compose.interpolate(published, {"BRIDGE_HTTP_PORT": "3999"}).startswith("3999:")
    location = server.one("location", "/")
    (proxy_pass,) = location.all("proxy_pass")
    upstream = site.one("upstream", proxy_pass.args[0].removeprefix("http://"))
    # One name for every replica, at the port they listen on inside their containers,
    # looked up again as replicas come and go (Docker's DNS).
    (member,) = upstream.all("server")
    assert member.args[:2] == [f"bridge-postgres:{REPLICA_PORT}", "resolve"]
    assert upstream.all("zone") and site.one("resolver").args[0] == "127.0.0.11"
    assert not {"ip_hash", "hash", "least_conn", "random"} & {d.name for d in upstream.block or []}
    # A replica that answers 503 (starting, or stopping after SIGTERM) or not at all:
    # the event goes to another replica now (a POST too), and that one rests a while.
    (next_upstream,) = location.all("proxy_next_upstream")
    assert {"error", "http_503", "non_idempotent"} <= set(next_upstream.args)
    assert "max_fails=1" in member.args
    # Slack's signature covers the body and its headers: nothing rewrites them.
    assert not location.all("proxy_set_body") and not location.all("proxy_pass_request_body")


def test_the_load_balancer_config_passes_nginx(tmp_path: Path) -> None:
    done = nginx.check(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


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
    assert "password" not in nginx.CONF.read_text().lower()


# -- Kubernetes ---------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_postgres_overlay_follows_the_kubernetes_schemas(version: str) -> None:
    for manifest in kustomize.build(OVERLAY):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except jsonschema.ValidationError as exc:
            name = f"{manifest['kind']} {manifest['metadata']['name']}"
            pytest.fail(f"{name} (Kubernetes {version}): {list(exc.absolute_path)}: {exc.message}")


def test_postgres_overlay_runs_two_bridges_with_the_database_url_from_a_secret() -> None:
    assert _overlay("PersistentVolumeClaim") == []
    (deployment,) = _overlay("Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # Every replica takes BRIDGE_DATABASE from the Secret (one pod template for all).
    env = {e["name"]: e for e in container["env"]}
    assert env["BRIDGE_DATABASE"]["valueFrom"] == {
        "secretKeyRef": {"name": "owui-bridge-database", "key": "url"}
    }
    assert "value" not in env["BRIDGE_DATABASE"]
    # Each replica keeps to 1/N of Slack's and Discord's API limits, N the replicas.
    assert env["BRIDGE_REPLICAS"]["value"] == str(deployment["spec"]["replicas"])
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/config", "/tmp"}
    # The rest is the SQLite setup's (Secret, ConfigMap, Service), plus the budget.
    base = {
        (m["kind"], m["metadata"]["name"]) for m in kustomize.build(REPO / "deploy" / "kubernetes")
    }
    built = {(m["kind"], m["metadata"]["name"]) for m in kustomize.build(OVERLAY)}
    assert built == base - {("PersistentVolumeClaim", "owui-bridge-data")} | {
        ("PodDisruptionBudget", "owui-bridge")
    }
    assert yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())["resources"] == [
        "../kubernetes",
        "poddisruptionbudget.yaml",
    ]


def test_postgres_overlay_rolls_out_and_is_disrupted_one_pod_at_a_time() -> None:
    (deployment,) = _overlay("Deployment")
    # A new pod is ready before an old one stops: never fewer than two answering.
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert pod["spec"]["terminationGracePeriodSeconds"] > SHUTDOWN_GRACE
    # Evictions (node drains, upgrades) leave at least one replica, and it is this
    # Deployment's pods the budget counts.
    (budget,) = _overlay("PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    labels = pod["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    # Replicas on different nodes where the cluster allows (preferred, not required:
    # a one-node cluster still runs both).
    anti = pod["spec"]["affinity"]["podAntiAffinity"]
    assert set(anti) == {"preferredDuringSchedulingIgnoredDuringExecution"}
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
