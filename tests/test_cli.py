"""The CLI as a real subprocess: --once, exit codes, signals, env vs flags, messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TokenDir
from sidecar_process import wait_until
from sidecar.consumer import read_credentials
from vendor_double import VendorDouble, error

EXE = [sys.executable, "-m", "sidecar"]


def base_args(vendor: VendorDouble, token_dir: TokenDir, out: Path) -> list[str]:
    return ["--out", str(out), "--vendor-url", vendor.url, "--token-file", str(token_dir.path), "--bucket", "artifacts", "--prefix", "tenant-a/"]


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VEND_SIDECAR_")}
    full_env.update(env or {})
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def test_once_publishes_and_exits_zero(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    result = run([*base_args(vendor, token_dir, out_dir), "--once", "--actions", "read,list"])
    assert result.returncode == 0, result.stderr
    assert read_credentials(out_dir).access_key_id == vendor.issued[0]["access_key_id"]
    assert vendor.requests[0].json["actions"] == ["read", "list"]  # type: ignore[index]
    assert "vend.success" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("status, code", [(403, "denied"), (400, "invalid_request"), (401, "invalid_token")])
def test_once_permanent_refusal_exits_3(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path, status: int, code: str) -> None:
    vendor.script(error(status, code, "tenant_mismatch"))
    result = run([*base_args(vendor, token_dir, out_dir), "--once"])
    assert result.returncode == 3, result.stderr
    assert "tenant_mismatch" in result.stderr and len(vendor.requests) == 1


def test_once_deadline_exits_4(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    vendor.script(*[error(503, "backend_unavailable")] * 100)
    result = run([*base_args(vendor, token_dir, out_dir), "--once", "--once-timeout", "1.5"])
    assert result.returncode == 4, result.stderr
    assert "could not get credentials" in result.stderr
    assert not (out_dir / "..data").exists()


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--out", "x"], {}, "VEND_SIDECAR_VENDOR_URL"),
        (["--out", "x", "--vendor-url", "http://vend.example"], {}, "--vendor-url / VEND_SIDECAR_VENDOR_URL"),
        (["--out", "x"], {"VEND_SIDECAR_TTL": "forever"}, "--ttl / VEND_SIDECAR_TTL"),
        (["--out", "x", "--no-such-flag"], {}, "unrecognized arguments"),
        (["frobnicate"], {}, "unknown command 'frobnicate'"),
        ([], {}, "--out / VEND_SIDECAR_OUT: required"),
    ],
)
def test_configuration_errors_exit_2_with_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    result = run(args, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_configuration_error_in_json_mode_is_json() -> None:
    result = run(["--out", "x", "--ttl", "x", "--log-format", "json"])
    assert result.returncode == 2
    doc = json.loads(result.stderr)
    assert doc["event"] == "config.invalid" and "--ttl" in doc["error"]


def test_out_from_env_and_flags_win(vendor: VendorDouble, token_dir: TokenDir, tmp_path: Path) -> None:
    env = {
        "VEND_SIDECAR_OUT": str(tmp_path / "env-out"),
        "VEND_SIDECAR_VENDOR_URL": vendor.url,
        "VEND_SIDECAR_TOKEN_FILE": str(token_dir.path),
        "VEND_SIDECAR_BUCKET": "artifacts",
        "VEND_SIDECAR_TTL": "900",
        "VEND_SIDECAR_ONCE": "true",
    }
    assert run([], env).returncode == 0
    assert (tmp_path / "env-out" / "..data").is_symlink()
    assert vendor.requests[-1].json["ttl_seconds"] == 900  # type: ignore[index]
    assert run(["--out", str(tmp_path / "flag-out"), "--ttl", "1200"], env).returncode == 0
    assert (tmp_path / "flag-out" / "..data").is_symlink()
    assert vendor.requests[-1].json["ttl_seconds"] == 1200  # type: ignore[index]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_keeps_the_set(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEND_SIDECAR_")}
    proc = subprocess.Popen([*EXE, *base_args(vendor, token_dir, out_dir)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until(lambda: (out_dir / "..data").exists(), what="the first publish")
        before = read_credentials(out_dir)
        proc.send_signal(sig)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert proc.stderr is not None and "shutdown" in proc.stderr.read()
    assert read_credentials(out_dir) == before


def test_json_logs_are_one_object_per_line(vendor: VendorDouble, token_dir: TokenDir, out_dir: Path) -> None:
    vendor.script(error(503, "backend_unavailable", retry_after="0"))
    result = run([*base_args(vendor, token_dir, out_dir), "--once", "--log-format", "json", "--log-level", "debug"])
    assert result.returncode == 0
    docs = [json.loads(line) for line in result.stderr.splitlines()]
    events = [d["event"] for d in docs]
    assert {"start", "token.loaded", "vend.attempt", "vend.failure", "vend.success", "publish", "exit"} <= set(events)
    success = next(d for d in docs if d["event"] == "vend.success")
    for key in ("issuer", "sub", "tenant", "request_id", "decision_id", "lease_id", "backend", "granted_ttl", "expiration"):
        assert key in success, key


def test_help_and_version() -> None:
    result = run(["--help"])
    assert result.returncode == 0
    for flag in ("--out", "--vendor-url", "--token-file", "--bucket", "--prefix", "--actions", "--ttl", "--once", "--ca-file", "--client-cert", "--file-mode", "--audience", "--log-format", "VEND_SIDECAR_VENDOR_URL"):
        assert flag in result.stdout, flag
    assert run(["--version"]).stdout.startswith("vend-sidecar ")
