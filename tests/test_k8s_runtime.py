"""The rendered manifests, run: the real sidecar, started with the environment a pod
would hand it, answers the probes the manifests define, serves the metrics the alert
rules use, and the classic overlay's postStart hook waits exactly for a usable set.

Only what cannot exist outside a cluster is rewritten: the vending URL (the loopback
double), the two mount paths (temporary directories) and the health address
(loopback, a free port). Everything else (audience, bucket, prefix, actions, TTL,
log format) comes from the rendered ConfigMap and container env unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sidecar_process import WAIT, SidecarProcess, sidecar_env, wait_until
from test_health import gated_grant
from manifests import METRICS, build, effective_env, find, pod_spec
from vendor_double import error

from sidecar.credentials import Credentials
from sidecar.publish import Publisher
from sidecar.render import render

VENV_BIN = str(Path(sys.executable).parent)


def sidecar_container(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (workload,) = find(docs, kind)
    spec = pod_spec(workload)
    (container,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == "vend-sidecar"]
    return container


def publish(out: Path, lifetime: timedelta) -> None:
    credentials = Credentials(
        access_key_id="ASIAK8SHOOKTEST00001",
        secret_access_key=SecretStr("hook-secret"),
        session_token=SecretStr("hook-session-token"),
        expiration=datetime.now(UTC).replace(microsecond=0) + lifetime,
    )
    publisher = Publisher(out, file_mode=0o440)
    publisher.prepare()
    publisher.publish(render(credentials))


def test_manifest_probes_and_metrics_against_the_running_sidecar(vendor, token_dir, tmp_path: Path) -> None:
    docs = build("k8s/base")
    container = sidecar_container(docs, "Deployment")
    env = effective_env(container, docs)
    out = tmp_path / "vend"
    env.update(
        VEND_SIDECAR_VENDOR_URL=vendor.url,
        VEND_SIDECAR_OUT=str(out),
        VEND_SIDECAR_TOKEN_FILE=str(token_dir.path),
        VEND_SIDECAR_HEALTH_ADDR="127.0.0.1:0",
    )
    # One transient failure (so a failure series exists), then a grant held back
    # until the probes have been seen failing.
    gate = threading.Event()
    vendor.script(error(503, "backend_unavailable", retry_after="0"), gated_grant(gate))
    sidecar = SidecarProcess(container["args"], env=sidecar_env(**env))
    try:
        base = sidecar.url()
        startup, readiness, liveness = (container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
        wait_until(lambda: len(vendor.requests) >= 2, what="the held second vend")
        # What kubelet sees before the first set: started = no, so the app waits.
        assert httpx.get(base + startup, timeout=5).status_code == 503
        assert httpx.get(base + readiness, timeout=5).status_code == 503
        assert httpx.get(base + liveness, timeout=5).status_code == 200, "a slow vendor is no reason to restart"
        assert not (out / "..data").exists()

        gate.set()
        wait_until(lambda: httpx.get(base + startup, timeout=5).status_code == 200, what="startupProbe success")
        assert httpx.get(base + readiness, timeout=5).status_code == 200
        assert (out / "access_key_id").read_text() == vendor.issued[-1]["access_key_id"]

        # The request carried the ConfigMap's settings.
        body = vendor.requests[-1].json
        data = find(docs, "ConfigMap")[0]["data"]
        assert body["bucket"] == data["VEND_SIDECAR_BUCKET"] and body["prefix"] == data["VEND_SIDECAR_PREFIX"]
        assert body["actions"] == data["VEND_SIDECAR_ACTIONS"].split(",")
        assert body["ttl_seconds"] == int(data["VEND_SIDECAR_TTL"])

        # Every metric the alert rules use is served.
        text = httpx.get(base + "/metrics", timeout=5).text
        samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
        rules = yaml.safe_dump(find(build("k8s/monitoring"), "PrometheusRule")[0])
        used = set(re.findall(r"\bvend_sidecar_[a-z_]+", rules))
        assert used and used <= METRICS
        missing = used - samples.keys()
        assert not missing, f"the alert rules use metrics the sidecar does not serve: {missing}"
    finally:
        assert sidecar.stop() == 0, sidecar.output
    assert (out / "..data").exists(), "SIGTERM leaves the set in place"


def hook_script(bound: int | None = None) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
    docs = build("k8s/overlays/classic-sidecar")
    container = sidecar_container(docs, "Deployment")
    command = container["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    script = command[2]
    if bound is not None:
        # The same script with a lower bound on tries, so a failing wait ends quickly.
        script, count = re.subn(r'-ge \d+ \]', f"-ge {bound} ]", script)
        assert count == 1
    return script, effective_env(container, docs), docs


def run_hook(script: str, env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    env = sidecar_env(**{**env, "VEND_SIDECAR_OUT": str(out)})
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")  # the image's PATH has vend-sidecar first
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=WAIT * 3)


def test_classic_post_start_hook_passes_once_a_set_is_published(tmp_path: Path) -> None:
    script, env, _ = hook_script()
    out = tmp_path / "vend"
    publish(out, timedelta(hours=1))
    done = run_hook(script, env, out)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("lifetime", "reason"),
    [(None, "no credentials published"), (timedelta(seconds=30), "need more than 60 s")],
    ids=["nothing-published", "within-min-remaining"],
)
def test_classic_post_start_hook_keeps_waiting_and_gives_up_with_the_reason(
    tmp_path: Path, lifetime: timedelta | None, reason: str
) -> None:
    script, env, _ = hook_script(bound=2)
    out = tmp_path / "vend"
    out.mkdir()
    if lifetime is not None:
        publish(out, lifetime)  # valid, but with less than check's 60 s minimum left
    done = run_hook(script, env, out)
    assert done.returncode == 1
    line = done.stdout.strip()
    assert line and "\n" not in line, "one line, shown in the FailedPostStartHook event"
    assert reason in line
    assert "hook-secret" not in done.stdout + done.stderr
