"""``vend-sidecar check`` and ``vend-sidecar credential-process`` against a running
sidecar's output, and credential_process resolved by a real botocore session."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import botocore.session
import pytest
from botocore.exceptions import CredentialRetrievalError
from sidecar_process import VEND_SIDECAR, run_cli, sidecar_env, start_sidecar, wait_until  # noqa: F401
from test_health import gated_grant
from vendor_double import is_consistent


def test_check_follows_the_running_sidecar(start_sidecar, vendor, out_dir: Path) -> None:  # noqa: F811
    gate = threading.Event()
    vendor.script(gated_grant(gate))
    sidecar = start_sidecar()
    wait_until(lambda: vendor.requests, what="the first vend request")

    before = run_cli("check", "--out", str(out_dir))
    assert before.returncode == 1
    assert before.stdout == ""
    assert before.stderr.strip() == f"vend-sidecar: not ready: no credentials published in {out_dir} yet"

    gate.set()
    sidecar.wait_event("publish")
    ready = run_cli("check", "--out", str(out_dir), "--min-remaining", "60")
    assert ready.returncode == 0, ready.stderr
    expiration = vendor.issued[-1]["expiration"]
    assert ready.stdout.startswith(f"vend-sidecar: ready: credentials in {out_dir} valid until {expiration} (")
    assert len(ready.stdout.splitlines()) == 1 and ready.stderr == ""

    too_short = run_cli("check", "--out", str(out_dir), "--min-remaining", "7200")
    assert too_short.returncode == 1
    assert "need more than 7200 s" in too_short.stderr

    as_json = run_cli("check", "--out", str(out_dir), "--log-format", "json")
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 0
    assert doc["ready"] is True and doc["expiration"] == expiration and doc["remaining_seconds"] > 3000
    for secret in vendor.secrets():
        assert secret not in ready.stdout + too_short.stderr + as_json.stdout


def test_check_reads_the_environment_and_rejects_bad_flags(tmp_path: Path) -> None:
    missing = run_cli("check")
    assert missing.returncode == 2
    assert "--out / VEND_SIDECAR_OUT: required" in missing.stderr
    negative = run_cli("check", "--out", str(tmp_path), "--min-remaining", "-1")
    assert negative.returncode == 2
    assert "--min-remaining / VEND_SIDECAR_MIN_REMAINING" in negative.stderr
    via_env = subprocess.run([VEND_SIDECAR, "check"], capture_output=True, text=True, timeout=20,
                             env=sidecar_env(VEND_SIDECAR_OUT=str(tmp_path)))
    assert via_env.returncode == 1
    assert f"no credentials published in {tmp_path} yet" in via_env.stderr


@pytest.fixture
def aws_config(tmp_path: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS config whose default profile runs our credential_process; nothing else
    (no env keys, no shared credentials file, no instance metadata) can answer."""
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\ncredential_process = {VEND_SIDECAR} credential-process --out {out_dir}\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return config


def test_botocore_resolves_credentials_through_credential_process(aws_config, start_sidecar, vendor) -> None:  # noqa: F811
    sidecar = start_sidecar()
    sidecar.wait_event("publish")
    credentials = botocore.session.Session().get_credentials()
    assert credentials is not None and credentials.method == "custom-process"
    frozen = credentials.get_frozen_credentials()
    issued = vendor.issued[-1]
    assert frozen.access_key == issued["access_key_id"]
    assert is_consistent(frozen.access_key, frozen.secret_key, frozen.token)
    assert credentials._expiry_time.strftime("%Y-%m-%dT%H:%M:%SZ") == issued["expiration"]


def test_credential_process_fails_cleanly_when_nothing_is_published(aws_config, out_dir: Path) -> None:
    direct = run_cli("credential-process", "--out", str(out_dir))
    assert direct.returncode == 1
    assert direct.stdout == ""
    assert direct.stderr.strip() == f"vend-sidecar credential-process: no credentials published in {out_dir} yet"
    with pytest.raises(CredentialRetrievalError, match="no credentials published"):
        botocore.session.Session().get_credentials()


def test_credential_process_prints_version_1_json(start_sidecar, vendor, out_dir: Path) -> None:  # noqa: F811
    start_sidecar().wait_event("publish")
    result = run_cli("credential-process", "--out", str(out_dir))
    assert result.returncode == 0 and result.stderr == ""
    doc = json.loads(result.stdout)
    issued = vendor.issued[-1]
    assert doc == {
        "Version": 1,
        "AccessKeyId": issued["access_key_id"],
        "SecretAccessKey": issued["secret_access_key"],
        "SessionToken": issued["session_token"],
        "Expiration": issued["expiration"],
    }
