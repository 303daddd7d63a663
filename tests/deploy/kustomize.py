"""A `kustomize build` for the subset of kustomize june's manifests use, to check them without kubectl.

Supported kustomization keys: resources (files, or folders with their own kustomization.yaml),
namespace, images (name → newName/newTag), replicas, patches (JSON 6902 ops add/replace/remove
with a kind/name target). Any other key raises, so a manifest cannot silently rely on a feature
this renderer would ignore.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


class KustomizeError(ValueError):
    """The kustomization uses an unsupported feature, names a missing file, or a patch cannot apply."""


def build(folder: Path) -> list[dict[str, Any]]:
    """The rendered resources of the kustomization in `folder`, in kustomize's resource order."""
    kfile = folder / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"{folder}: no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text())
    unknown = set(k) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported keys {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for entry in k.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            docs += build(path)
        elif path.is_file():
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
        else:
            raise KustomizeError(f"{kfile}: resource {entry!r} does not exist")
    for patch in k.get("patches", []):
        _apply_patch(docs, patch, kfile)
    for rep in k.get("replicas", []):
        target = _find(docs, None, rep["name"], kinds={"Deployment", "StatefulSet", "ReplicaSet"}, where=kfile)
        target["spec"]["replicas"] = rep["count"]
    for image in k.get("images", []):
        _set_image(docs, image)
    if "namespace" in k:
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = k["namespace"]
    return docs


def _find(docs: list[dict], kind: str | None, name: str, *, where: Path, kinds: set[str] | None = None) -> dict:
    hits = [
        d
        for d in docs
        if d["metadata"].get("name") == name
        and (kind is None or d["kind"] == kind)
        and (kinds is None or d["kind"] in kinds)
    ]
    if len(hits) != 1:
        raise KustomizeError(f"{where}: {len(hits)} resources match {kind or kinds} {name!r}")
    return hits[0]


def _apply_patch(docs: list[dict], patch: dict, where: Path) -> None:
    if set(patch) != {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        raise KustomizeError(f"{where}: only inline JSON 6902 patches with a kind/name target are supported")
    doc = _find(docs, patch["target"].get("kind"), patch["target"]["name"], where=where)
    for op in yaml.safe_load(patch["patch"]):
        _json_patch(doc, op, where)


def _json_patch(doc: dict, op: dict, where: Path) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent: Any = doc
    try:
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if op["op"] == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif op["op"] == "replace":
            key = int(last) if isinstance(parent, list) else last
            parent[key]  # must exist
            parent[key] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise KustomizeError(f"{where}: unsupported patch op {op['op']!r}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise KustomizeError(f"{where}: patch {op} does not apply: {e!r}") from e


def _set_image(docs: list[dict], image: dict) -> None:
    for d in docs:
        spec = d.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template", {}
        ).get("spec")
        for c in (pod or {}).get("containers", []) + (pod or {}).get("initContainers", []):
            ref = c["image"]
            slash = ref.rfind("/")
            name, tag = ref.rsplit(":", 1) if ref.rfind(":") > slash else (ref, "")
            if name == image["name"]:
                c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
