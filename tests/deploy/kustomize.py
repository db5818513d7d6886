"""``kubectl kustomize DIR`` for the subset deploy/ uses, so the tests see what
``kubectl apply -k`` applies without kubectl: resources (files and directories),
``patches`` (strategic merge patches from files, ``$patch: delete`` included),
``images`` and ``labels``. Anything else in a kustomization.yaml is refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

# The lists a strategic merge patch merges item by item (by this key), as Kubernetes
# declares them; other lists are replaced.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
_KNOWN = {"apiVersion", "kind", "resources", "patches", "images", "labels"}


def build(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= _KNOWN, f"not understood here: {set(kustomization) - _KNOWN}"
    manifests: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            manifests.extend(build(path))
        else:
            manifests.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, f"not understood here: {patch}"
        for doc in yaml.safe_load_all((directory / patch["path"]).read_text()):
            manifests = _patch(manifests, doc)
    for image in kustomization.get("images", []):
        for manifest in manifests:
            for container in _containers(manifest):
                if container["image"].partition(":")[0] == image["name"]:
                    name = image.get("newName", image["name"])
                    container["image"] = f"{name}:{image['newTag']}"
    for labels in kustomization.get("labels", []):
        for manifest in manifests:
            manifest["metadata"].setdefault("labels", {}).update(labels["pairs"])
            if labels.get("includeSelectors") and manifest["kind"] == "Deployment":
                spec = manifest["spec"]
                spec["selector"]["matchLabels"].update(labels["pairs"])
                spec["template"]["metadata"].setdefault("labels", {}).update(labels["pairs"])
            elif labels.get("includeSelectors") and manifest["kind"] == "Service":
                manifest["spec"].setdefault("selector", {}).update(labels["pairs"])
    return manifests


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    if manifest["kind"] != "Deployment":
        return []
    containers: list[dict[str, Any]] = manifest["spec"]["template"]["spec"]["containers"]
    return containers


def _patch(manifests: list[dict[str, Any]], patch: dict[str, Any]) -> list[dict[str, Any]]:
    def target(m: dict[str, Any]) -> bool:
        return bool(
            m["kind"] == patch["kind"] and m["metadata"]["name"] == patch["metadata"]["name"]
        )

    assert sum(map(target, manifests)) == 1, f"patch target not found: {patch['metadata']}"
    if patch.get("$patch") == "delete":
        return [m for m in manifests if not target(m)]
    return [_merge(m, patch) if target(m) else m for m in manifests]


def _merge(base: Any, patch: Any, key: str | None = None) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for name, value in patch.items():
            merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and key in _MERGE_KEYS:
        by = _MERGE_KEYS[key]
        items = copy.deepcopy(base)
        for item in patch:
            found = [i for i, old in enumerate(items) if old.get(by) == item[by]]
            assert len(found) <= 1
            if item.get("$patch") == "delete":
                assert found, f"nothing to delete: {item}"
                del items[found[0]]
            elif found:
                items[found[0]] = _merge(items[found[0]], item)
            else:
                items.append(item)
        return items
    return copy.deepcopy(patch)
