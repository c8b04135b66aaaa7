"""The Kubernetes manifests, as ``kubectl kustomize`` renders them, agree with the
sidecar they deploy.

Every kustomization under k8s/ is built once (module fixture) with the real
kubectl, the YAML is parsed, and each workload's pod spec is checked for the
properties docs/deploy.md promises: a native sidecar whose startupProbe gates the
app (or, in the classic overlay, a postStart wait), a projected token with the
vending service's audience, credentials on a memory-backed emptyDir that the app
mounts read-only and whole, a hardened security context, and ``_REF`` variables
that name the files the sidecar really publishes. The sidecar's own settings are
derived the way Kubernetes would hand them to it (``envFrom`` the ConfigMap, then
``env``, then ``args``) and parsed by the real settings model, so the ConfigMap
is proven to be a valid configuration and the mount paths are compared with what
the program will actually use. (Schema validation against Kubernetes 1.30 is
scripts/lint.sh's job.)
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from manifests import METRICS, ROOT, SIDECAR, apps_of, build, effective_env, find, mounts, pod_spec, sidecar_of, volume, workloads
from pydantic import SecretStr

from sidecar.cli import EXIT_CONFIG, EXIT_DEADLINE, EXIT_REFUSED
from sidecar.credentials import Credentials
from sidecar.metrics import FAILURE_CLASSES
from sidecar.publish import Publisher
from sidecar.render import FILE_NAMES, render
from sidecar.settings import RunSettings, env_name, load

CREDENTIALS_VOLUME = "vend-credentials"
TOKEN_VOLUME = "vend-token"

BUILDS = {
    "base": "k8s/base",
    "classic-sidecar": "k8s/overlays/classic-sidecar",
    "job": "k8s/overlays/job",
    "monitoring": "k8s/monitoring",
}

#: artifact-store's settings and the published file each must name (contract v1).
REFS = {
    "ARTIFACTSTORE_S3_ACCESS_KEY_REF": "access_key_id",
    "ARTIFACTSTORE_S3_SECRET_KEY_REF": "secret_access_key",
    "ARTIFACTSTORE_S3_SESSION_TOKEN_REF": "session_token",
    "ARTIFACTSTORE_S3_CREDENTIAL_EXPIRATION_REF": "expiration",
}

#: Series the rules may use from elsewhere: the scrape itself and kube-state-metrics.
EXTERNAL_SERIES = {"up", "kube_pod_init_container_status_ready", "kube_pod_container_status_ready"}


# -- rendering ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: build(path) for name, path in BUILDS.items()}


def sidecar_settings(container: dict[str, Any], docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> RunSettings:
    """Parse the sidecar's env and args with the real settings model (as the process would)."""
    for key, value in effective_env(container, docs).items():
        monkeypatch.setenv(key, value)
    args = list(container.get("args", []))
    assert container.get("command") is None, "the image's ENTRYPOINT (vend-sidecar) must stay in charge"
    assert args and args[0] == "run", "the sidecar runs the 'run' command explicitly"
    settings = load(RunSettings, args[1:])
    settings.require_vendor()
    return settings


@pytest.fixture(params=["base", "classic-sidecar", "job"])
def each_workload(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    found = [w for w in workloads({request.param: rendered[request.param]})]
    assert found, f"{request.param} renders no workload"
    return found


# -- shape of each build -----------------------------------------------------------


def test_each_build_renders_what_it_should(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {name: sorted(doc["kind"] for doc in docs) for name, docs in rendered.items()}
    assert kinds["base"] == ["ConfigMap", "Deployment", "ServiceAccount"]
    assert kinds["classic-sidecar"] == ["ConfigMap", "Deployment", "ServiceAccount"]
    assert kinds["job"] == ["ConfigMap", "CronJob", "Job", "ServiceAccount"]
    assert kinds["monitoring"] == ["PodMonitor", "PrometheusRule"]


def test_settings_changes_roll_the_pods(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The ConfigMap is generated with a content hash, and every reference follows it."""
    for label, workload, docs in workloads(rendered):
        (configmap,) = find(docs, "ConfigMap")
        assert re.fullmatch(r"vend-sidecar-[a-z0-9]{10}", configmap["metadata"]["name"]), label
        refs = [s["configMapRef"]["name"] for s in sidecar_of(pod_spec(workload)).get("envFrom", [])]
        assert refs == [configmap["metadata"]["name"]], label


def test_configmap_holds_only_known_non_secret_settings(rendered: dict[str, list[dict[str, Any]]]) -> None:
    known = {env_name(field) for field in RunSettings.model_fields}
    for build in ("base", "job"):
        (configmap,) = find(rendered[build], "ConfigMap")
        data = configmap["data"]
        assert set(data) <= known, f"unknown settings in the ConfigMap: {sorted(set(data) - known)}"
        for required in ("VEND_SIDECAR_VENDOR_URL", "VEND_SIDECAR_AUDIENCE", "VEND_SIDECAR_BUCKET",
                         "VEND_SIDECAR_PREFIX", "VEND_SIDECAR_ACTIONS", "VEND_SIDECAR_TTL"):
            assert required in data, required
        assert not any(re.search(r"SECRET|TOKEN$|PASSWORD|KEY$", key) for key in data)


# -- the sidecar and the pod ---------------------------------------------------------


def test_native_sidecar_with_startup_probe_gates_the_app(rendered: dict[str, list[dict[str, Any]]]) -> None:
    checked = 0
    for build in ("base", "job"):
        for workload in find(rendered[build], "Deployment") + find(rendered[build], "Job"):
            spec = pod_spec(workload)
            sidecar = spec["initContainers"][0]
            assert sidecar["name"] == SIDECAR and sidecar["restartPolicy"] == "Always"
            assert all(c["name"] != SIDECAR for c in spec["containers"])
            env = effective_env(sidecar, rendered[build])
            health_port = int(env["VEND_SIDECAR_HEALTH_ADDR"].rpartition(":")[2])
            ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
            startup = sidecar["startupProbe"]
            assert startup["httpGet"]["path"] == "/readyz"
            assert ports[startup["httpGet"]["port"]] == health_port
            # Room for the first vend, transient retries included (full jitter, 60 s cap).
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
            assert startup["periodSeconds"] <= 2, "poll often: the app waits on this probe"
            assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert ports[sidecar["readinessProbe"]["httpGet"]["port"]] == health_port
            assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert ports[sidecar["livenessProbe"]["httpGet"]["port"]] == health_port
            checked += 1
    assert checked == 2


def test_classic_sidecar_starts_first_and_waits_in_post_start(rendered: dict[str, list[dict[str, Any]]]) -> None:
    (deployment,) = find(rendered["classic-sidecar"], "Deployment")
    spec = pod_spec(deployment)
    assert "initContainers" not in spec
    first = spec["containers"][0]
    assert first["name"] == SIDECAR and "restartPolicy" not in first
    assert len(spec["containers"]) >= 2
    command = first["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    assert 'vend-sidecar check --out "$VEND_SIDECAR_OUT"' in command[2]
    assert re.search(r'-ge \d+ \]', command[2]), "the wait must be bounded"


def test_once_init_container_for_cronjobs(rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered["job"]
    (cronjob,) = find(docs, "CronJob")
    job_spec = cronjob["spec"]["jobTemplate"]["spec"]
    spec = pod_spec(cronjob)
    sidecar = spec["initContainers"][0]
    assert sidecar["name"] == SIDECAR
    assert "restartPolicy" not in sidecar, "a plain init container: it must exit before the app starts"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
        assert probe not in sidecar
    settings = sidecar_settings(sidecar, docs, monkeypatch)
    assert settings.once
    # Nothing refreshes: the run must end before the requested lease does.
    assert job_spec["activeDeadlineSeconds"] < settings.ttl
    assert settings.once_timeout < job_spec["activeDeadlineSeconds"]
    assert spec["restartPolicy"] == "Never"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    # Permanent refusals and bad configuration fail the Job; a deadline is retried.
    (fail_job,) = [r for r in job_spec["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert fail_job["onExitCodes"]["containerName"] == SIDECAR
    assert fail_job["onExitCodes"]["operator"] == "In"
    assert sorted(fail_job["onExitCodes"]["values"]) == sorted([EXIT_CONFIG, EXIT_REFUSED])
    assert EXIT_DEADLINE not in fail_job["onExitCodes"]["values"]


def test_native_sidecar_job_completes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    (job,) = find(rendered["job"], "Job")
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["spec"]["backoffLimit"] >= 1


def test_deployment_rollout_never_drops_ready_pods(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for build in ("base", "classic-sidecar"):
        (deployment,) = find(rendered[build], "Deployment")
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_token_is_projected_for_the_vending_audience(each_workload: list, monkeypatch: pytest.MonkeyPatch) -> None:
    for label, workload, docs in each_workload:
        spec = pod_spec(workload)
        sidecar = sidecar_of(spec)
        settings = sidecar_settings(sidecar, docs, monkeypatch)
        (source,) = volume(spec, TOKEN_VOLUME)["projected"]["sources"]
        token = source["serviceAccountToken"]
        assert settings.audience and token["audience"] == settings.audience, label
        assert token["expirationSeconds"] >= 600, label
        (mount,) = mounts(sidecar, TOKEN_VOLUME)
        assert mount.get("readOnly") is True, label
        assert "subPath" not in mount and "subPathExpr" not in mount, label
        assert PurePosixPath(mount["mountPath"]) / token["path"] == PurePosixPath(settings.token_file), label
        assert settings.token_file == Path("/var/run/secrets/tokens/vend-token"), label
        # Only the sidecar sees the token; no container gets an API-server token.
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container is not sidecar:
                assert not mounts(container, TOKEN_VOLUME), f"{label}: {container['name']} mounts the token"
        assert spec["automountServiceAccountToken"] is False, label
        accounts = {sa["metadata"]["name"]: sa for sa in find(docs, "ServiceAccount")}
        assert spec["serviceAccountName"] in accounts, label
        assert accounts[spec["serviceAccountName"]]["automountServiceAccountToken"] is False, label


def test_credentials_volume_is_memory_and_read_only_in_the_app(each_workload: list, monkeypatch: pytest.MonkeyPatch) -> None:
    for label, workload, docs in each_workload:
        spec = pod_spec(workload)
        sidecar = sidecar_of(spec)
        settings = sidecar_settings(sidecar, docs, monkeypatch)
        empty_dir = volume(spec, CREDENTIALS_VOLUME)["emptyDir"]
        assert empty_dir["medium"] == "Memory", label
        assert empty_dir.get("sizeLimit"), label
        (mount,) = mounts(sidecar, CREDENTIALS_VOLUME)
        assert PurePosixPath(mount["mountPath"]) == PurePosixPath(settings.out), label
        assert not mount.get("readOnly"), label
        apps = apps_of(spec)
        assert apps, label
        for container in spec.get("initContainers", []) + spec["containers"]:
            for m in mounts(container, CREDENTIALS_VOLUME):
                assert "subPath" not in m and "subPathExpr" not in m, f"{label}: {container['name']} uses subPath"
        for app in apps:
            (app_mount,) = mounts(app, CREDENTIALS_VOLUME)
            assert app_mount["readOnly"] is True, f"{label}: {app['name']}"


def test_ref_wiring_names_the_published_files(each_workload: list, tmp_path: Path) -> None:
    """Each _REF path, mapped onto a real published set, reads the value it names."""
    credentials = Credentials(
        access_key_id="ASIAK8SWIRINGTEST001",
        secret_access_key=SecretStr("wiring-secret"),
        session_token=SecretStr("wiring-session-token"),
        expiration=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1),
    )
    publisher = Publisher(tmp_path / "out", file_mode=0o440)
    publisher.prepare()
    publisher.publish(render(credentials))
    expected = {
        "access_key_id": credentials.access_key_id,
        "secret_access_key": "wiring-secret",
        "session_token": "wiring-session-token",
        "expiration": credentials.expiration_text,
    }
    for label, workload, _docs in each_workload:
        for app in apps_of(pod_spec(workload)):
            (mount,) = mounts(app, CREDENTIALS_VOLUME)
            env = {e["name"]: e["value"] for e in app.get("env", []) if e["name"].endswith("_REF")}
            assert env.keys() == REFS.keys(), f"{label}: {app['name']}"
            for variable, file_name in REFS.items():
                path = PurePosixPath(env[variable])
                assert file_name in FILE_NAMES
                assert path == PurePosixPath(mount["mountPath"]) / file_name, f"{label}: {variable}"
                on_disk = tmp_path / "out" / path.relative_to(mount["mountPath"])
                assert on_disk.is_symlink(), "a visible name is a link into ..data"
                assert on_disk.read_text() == expected[file_name], f"{label}: {variable}"


def test_security_context_is_hardened(each_workload: list, monkeypatch: pytest.MonkeyPatch) -> None:
    for label, workload, docs in each_workload:
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, label
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", label
        assert isinstance(pod["fsGroup"], int) and pod["fsGroup"] > 0, label
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, label
        sidecar = sidecar_of(spec)
        # Files are 0440: the app reads them through the group (fsGroup on the volume).
        mode = sidecar_settings(sidecar, docs, monkeypatch).file_mode_int
        assert mode & 0o040 and not mode & 0o007, f"{label}: file mode {mode:o}"
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{label}: {container['name']}"
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True, where
            assert isinstance(ctx["runAsUser"], int) and ctx["runAsUser"] >= 1000, where
            assert isinstance(ctx["runAsGroup"], int) and ctx["runAsGroup"] >= 1000, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx.get("privileged") is not True, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where


def test_sidecar_resources_and_image(rendered: dict[str, list[dict[str, Any]]]) -> None:
    images = set()
    for label, workload, _docs in workloads(rendered):
        sidecar = sidecar_of(pod_spec(workload))
        requests, limits = sidecar["resources"]["requests"], sidecar["resources"]["limits"]
        assert {"cpu", "memory"} <= requests.keys() and {"cpu", "memory"} <= limits.keys(), label
        mib = [int(re.fullmatch(r"(\d+)Mi", q["memory"]).group(1)) for q in (requests, limits)]
        assert 0 < mib[0] <= mib[1], label
        images.add(sidecar["image"])
        for container in pod_spec(workload)["containers"]:
            assert re.fullmatch(r"[a-z0-9.-]+(:\d+)?/[a-z0-9/._-]+(:[\w.-]+|@sha256:[0-9a-f]{64})", container["image"]), label
    assert len(images) == 1, f"one sidecar image everywhere, got {images}"


# -- monitoring ---------------------------------------------------------------------


def test_pod_monitor_scrapes_the_sidecar(rendered: dict[str, list[dict[str, Any]]]) -> None:
    (monitor,) = find(rendered["monitoring"], "PodMonitor")
    (deployment,) = find(rendered["base"], "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    sidecar = sidecar_of(pod_spec(deployment))
    port_names = {p["name"] for p in sidecar["ports"]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"


def test_alert_rules_use_the_sidecars_metrics(rendered: dict[str, list[dict[str, Any]]]) -> None:
    (rule,) = find(rendered["monitoring"], "PrometheusRule")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert len(alerts) >= 4
    for alert in alerts:
        assert re.fullmatch(r"VendSidecar[A-Za-z]+", alert["alert"])
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"] and alert["for"]
        used = set(re.findall(r"\bvend_sidecar_[a-z_]+", alert["expr"]))
        assert used <= METRICS, f"{alert['alert']}: unknown metrics {used - METRICS}"
        external = set(re.findall(r"\b(?:up|kube_[a-z_]+)\b", alert["expr"]))
        assert external <= EXTERNAL_SERIES, f"{alert['alert']}: {external - EXTERNAL_SERIES}"
        assert used or external, alert["alert"]
        classes = set()
        for match in re.findall(r'class=~"([^"]+)"', alert["expr"]):
            classes |= set(match.split("|"))
        assert classes <= set(FAILURE_CLASSES), alert["alert"]
        for container in re.findall(r'container="([^"]+)"', alert["expr"]):
            assert container == SIDECAR
    assert {"VendSidecarCredentialsExpiringSoon", "VendSidecarRefreshFailing", "VendSidecarRefusedByPolicy",
            "VendSidecarNotReady"} <= {
        a["alert"] for a in alerts
    }


def test_no_rendered_manifest_carries_a_secret(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The manifests configure; they never embed credentials (no Secret objects either)."""
    for build, docs in rendered.items():
        assert not find(docs, "Secret"), build
        text = yaml.safe_dump_all(docs)
        assert not re.search(r"(?i)(AKIA|ASIA)[A-Z0-9]{12,}|aws_secret_access_key|BEGIN [A-Z ]*PRIVATE KEY", text), build


def test_a_user_overlay_that_changes_the_audience_moves_the_token_with_it(tmp_path: Path) -> None:
    """The docs' overlay pattern: merge a new audience, include the component again."""
    overlay = tmp_path / "my-team"
    overlay.mkdir()
    base = os.path.relpath(ROOT / "k8s/base", overlay)
    component = os.path.relpath(ROOT / "k8s/components/vend-sidecar", overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [base],
                "components": [component],
                "configMapGenerator": [
                    {"name": "vend-sidecar", "behavior": "merge", "literals": ["VEND_SIDECAR_AUDIENCE=vend.prod.example.com"]}
                ],
            }
        )
    )
    docs = build(str(overlay))
    (deployment,) = find(docs, "Deployment")
    (source,) = volume(pod_spec(deployment), TOKEN_VOLUME)["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "vend.prod.example.com"
    assert effective_env(sidecar_of(pod_spec(deployment)), docs)["VEND_SIDECAR_AUDIENCE"] == "vend.prod.example.com"
