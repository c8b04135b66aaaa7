"""``vend-sidecar dev`` as a real subprocess: banner, files, a working copy-paste
command, rotation, and a clean stop on SIGINT."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from sidecar.consumer import read_credentials
from sidecar.settings import RunSettings

from sidecar_process import wait_until


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("VEND_SIDECAR_", "AWS_"))}


def test_dev_prints_a_banner_publishes_rotates_and_stops_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "creds"
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "dev", "--out", str(out), "--lease", "4"],
        stdin=subprocess.DEVNULL,
        stdout=stdout.open("wb"),
        stderr=stderr.open("wb"),
        env=clean_env(),
    )
    try:
        banner = wait_until(lambda: "Try the credentials" in stdout.read_text() and stdout.read_text(), timeout=60, what="the banner")
        assert f"credentials   {out}/" in banner
        endpoint = re.search(r"S3 endpoint\s+(http://127\.0\.0\.1:\d+)", banner)
        assert endpoint, banner
        assert re.search(r"bucket\s+artifacts", banner) and re.search(r"prefix\s+tenant-a/", banner)
        first = read_credentials(out)  # published before the banner
        state = Path(re.search(r"grants\s+(\S+)", banner).group(1)).parent  # type: ignore[union-attr]
        assert state.is_dir()

        # The copy-paste command from the banner works as printed.
        probe_line = next(line.strip() for line in banner.splitlines() if "-m sidecar.dev.probe" in line)
        probe = subprocess.run(shlex.split(probe_line), capture_output=True, text=True, timeout=60, env=clean_env())
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert "refused: AccessDenied" in probe.stdout and "FAIL" not in probe.stdout

        # Short leases make rotation visible.
        wait_until(lambda: read_credentials(out).access_key_id != first.access_key_id, timeout=30, what="a rotation")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, stderr.read_text()[-3000:]
    log = stderr.read_text()
    assert "shutdown" in log and "dev.stopped" in log and "Traceback" not in log
    assert not state.exists()  # the token and grants are gone with the process
    last = read_credentials(out, min_remaining=-10**9)
    for secret in (first.secret_access_key, first.session_token, last.secret_access_key, last.session_token):
        assert secret.get_secret_value() not in log + stdout.read_text()


def test_dev_settings_are_not_defaults_of_run(tmp_path: Path) -> None:
    # run without a vendor is a configuration error naming the flag, never a silent
    # fallback to a loopback vendor or to dev keys.
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "run", "--out", str(tmp_path), "--bucket", "artifacts"],
        capture_output=True, text=True, timeout=60, env=clean_env(),
    )
    assert done.returncode == 2 and "--vendor-url" in done.stderr
    defaults = {name: field.default for name, field in RunSettings.model_fields.items()}
    assert defaults["vendor_url"] is None and defaults["exchange"] == "vendor"
    assert defaults["sts_endpoint"] is None and defaults["role_arn"] is None
    assert not any("127.0.0.1" in str(value) or "localhost" in str(value) for value in defaults.values())


def test_a_bad_grants_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    grants = tmp_path / "grants.toml"
    grants.write_text('[[grant]]\ntenant = "a"\nbucket = "artifacts"\nactions = ["read", "admin"]\n')
    for path in (grants, tmp_path / "missing.toml"):
        done = subprocess.run(
            [sys.executable, "-m", "sidecar", "dev", "--out", str(tmp_path / "out"), "--grants", str(path)],
            capture_output=True, text=True, timeout=60, env=clean_env(),
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("vend-sidecar: error: --grants: ") and len(done.stderr.splitlines()) == 1
