"""Rendering the k8s/ kustomizations and reading pod specs the way kubelet would.

Shared by tests/test_k8s.py (static properties) and tests/test_k8s_runtime.py (the
manifests run against a real sidecar).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SIDECAR = "vend-sidecar"
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")

Doc = dict[str, Any]

#: The metric names pinned by the operations issue (#4); tests/test_k8s_runtime.py
#: checks them against a running sidecar's /metrics.
METRICS = {
    "vend_sidecar_credentials_expiry_timestamp_seconds",
    "vend_sidecar_last_success_timestamp_seconds",
    "vend_sidecar_refresh_total",
    "vend_sidecar_refresh_failures_total",
    "vend_sidecar_vendor_request_duration_seconds",
    "vend_sidecar_token_expiry_timestamp_seconds",
}


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl not found on PATH: install kubectl >= 1.27 (https://kubernetes.io/docs/tasks/tools/#kubectl)")
    return path


def build(path: str) -> list[Doc]:
    """``kubectl kustomize ROOT/path`` (or an absolute path), parsed."""
    proc = subprocess.run([kubectl(), "kustomize", str(ROOT / path)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed: {proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def find(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def pod_spec(workload: Doc) -> Doc:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def workloads(rendered: dict[str, list[Doc]]) -> Iterator[tuple[str, Doc, list[Doc]]]:
    for build_name, docs in rendered.items():
        for doc in docs:
            if doc["kind"] in WORKLOAD_KINDS:
                yield f"{build_name}/{doc['kind']}/{doc['metadata']['name']}", doc, docs


def sidecar_of(spec: Doc) -> Doc:
    found = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == SIDECAR]
    assert len(found) == 1, f"expected exactly one {SIDECAR} container"
    return found[0]


def apps_of(spec: Doc) -> list[Doc]:
    return [c for c in spec["containers"] if c["name"] != SIDECAR]


def volume(spec: Doc, name: str) -> Doc:
    found = [v for v in spec["volumes"] if v["name"] == name]
    assert len(found) == 1, f"expected exactly one volume {name!r}"
    return found[0]


def mounts(container: Doc, volume_name: str) -> list[Doc]:
    return [m for m in container.get("volumeMounts", []) if m["name"] == volume_name]


def effective_env(container: Doc, docs: list[Doc]) -> dict[str, str]:
    """The container's environment as kubelet builds it: envFrom first, env wins."""
    configmaps = {cm["metadata"]["name"]: cm.get("data", {}) for cm in find(docs, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in configmaps, f"envFrom names ConfigMap {name!r}, which this build does not contain"
        env.update(configmaps[name])
    for item in container.get("env", []):
        assert "value" in item, f"{item['name']} must be a literal value"
        env[item["name"]] = item["value"]
    return env
