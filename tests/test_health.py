"""/healthz and /readyz of a running sidecar (real process, real HTTP), plus the pure
liveness verdict and the settings that guard the endpoints."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from sidecar_process import run_cli, sidecar_env, start_sidecar, wait_until  # noqa: F401
from vendor_double import VendorDouble, error, grant

from sidecar.health import liveness
from sidecar.loop import LoopStatus


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5.0)


def gated_grant(gate: threading.Event, limit: float = 30.0):
    """A grant that is held back until ``gate`` is set (bounded by ``limit`` s)."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, gate.wait, limit)
        return await grant()(request, double)

    return handler


def trickle(release: threading.Event, every: float = 0.2, limit: float = 30.0):
    """A 200 whose body arrives one space at a time (each within the read timeout)
    until ``release`` is set, then a valid grant: an attempt that never times out."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        waited = 0.0
        while not release.is_set() and waited < limit:
            await response.write(b" ")
            await asyncio.sleep(every)
            waited += every
        await response.write(json.dumps(double.new_credentials()).encode())
        await response.write_eof()
        return response

    return handler


def test_readyz_fails_until_the_first_publish_then_passes(start_sidecar, vendor) -> None:  # noqa: F811
    gate = threading.Event()
    vendor.script(gated_grant(gate))
    sidecar = start_sidecar("--health-addr", "127.0.0.1:0")
    base = sidecar.url()
    wait_until(lambda: vendor.requests, what="the first vend request")

    alive = get(base + "/healthz")
    assert alive.status_code == 200, alive.text
    assert alive.json()["phase"] == "vending"
    not_ready = get(base + "/readyz")
    assert not_ready.status_code == 503
    assert "no credentials published" in not_ready.json()["reason"]
    assert not_ready.headers["content-type"] == "application/json"

    gate.set()
    ready = wait_until(lambda: (r := get(base + "/readyz")).status_code == 200 and r, what="/readyz 200")
    body = ready.json()
    assert body["status"] == "ok"
    assert body["expiration"] == vendor.issued[-1]["expiration"]
    assert body["remaining_seconds"] > 60
    assert get(base + "/healthz").json()["phase"] == "waiting"


def test_readyz_fails_again_when_the_set_nears_expiry_and_refreshes_fail(start_sidecar, vendor) -> None:  # noqa: F811
    # One short lease, then the service fails every refresh: the published set runs
    # down past --min-remaining (1 s, after the refresh point at about 2/3 of the
    # lease) and readiness turns to 503 while liveness stays 200
    # (a restart cannot fix the vending service).
    vendor.script(grant(lifetime=6), *[error(503, "backend_unavailable") for _ in range(60)])
    sidecar = start_sidecar("--health-addr", "127.0.0.1:0", "--min-remaining", "1")
    base = sidecar.url()
    wait_until(lambda: get(base + "/readyz").status_code == 200, what="/readyz 200")
    failing = wait_until(lambda: (r := get(base + "/readyz")).status_code == 503 and r, what="/readyz 503")
    body = failing.json()
    assert "need more than 1 s" in body["reason"] or "expired" in body["reason"]
    assert body["consecutive_failures"] >= 1
    assert body["last_error_class"] == "transient"
    assert get(base + "/healthz").status_code == 200


def test_readyz_honours_min_remaining(start_sidecar, vendor) -> None:  # noqa: F811
    sidecar = start_sidecar("--health-addr", "127.0.0.1:0", "--min-remaining", "7200")
    base = sidecar.url()
    sidecar.wait_event("publish")
    response = get(base + "/readyz")
    assert response.status_code == 503
    assert "need more than 7200 s" in response.json()["reason"]


def test_healthz_reports_a_wedged_attempt_and_recovers(start_sidecar, vendor) -> None:  # noqa: F811
    release = threading.Event()
    vendor.script(trickle(release))
    # --timeout 5: the attempt limit (3 x timeout) stays far beyond --stall-after.
    sidecar = start_sidecar("--health-addr", "127.0.0.1:0", "--timeout", "5", "--stall-after", "2")
    base = sidecar.url()
    try:
        wedged = wait_until(lambda: (r := get(base + "/healthz")).status_code == 503 and r, what="/healthz 503")
    finally:
        release.set()
    body = wedged.json()
    assert body["status"] == "fail"
    assert body["reason"].startswith("one refresh attempt has been running for")
    assert body["phase"] == "vending" and body["stall_after"] == 2
    wait_until(lambda: get(base + "/healthz").status_code == 200, what="/healthz 200 after the answer")
    assert get(base + "/readyz").status_code == 200


def test_unknown_paths_and_methods(start_sidecar) -> None:  # noqa: F811
    base = start_sidecar("--health-addr", "127.0.0.1:0").url()
    assert get(base + "/nope").status_code == 404
    assert httpx.post(base + "/healthz", timeout=5.0).status_code == 405
    assert get(base + "/metrics").status_code == 200


def test_ipv6_addresses(start_sidecar, tmp_path: Path) -> None:  # noqa: F811
    auth = tmp_path / "auth"
    auth.write_text("ipv6-auth")
    sidecar = start_sidecar("--health-addr", "[::1]:0", "--serve-container-credentials", "[::1]:0",
                            "--container-auth-token-file", str(auth))
    health = sidecar.url()
    assert health.startswith("http://[::1]:")
    wait_until(lambda: get(health + "/readyz").status_code == 200, what="/readyz 200 over IPv6")
    credentials = sidecar.url("container_credentials.listening")
    assert httpx.get(credentials, headers={"Authorization": "ipv6-auth"}, timeout=5).status_code == 200


def test_health_server_is_off_unless_asked(start_sidecar) -> None:  # noqa: F811
    sidecar = start_sidecar()
    sidecar.wait_event("publish")
    assert sidecar.find("health.listening") is None
    assert sidecar.find("container_credentials.listening") is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--health-addr", "8081"], "--health-addr / VEND_SIDECAR_HEALTH_ADDR: must be HOST:PORT"),
        (["--health-addr", "::1:8081"], "put an IPv6 address in brackets"),
        (["--serve-container-credentials", "0.0.0.0:8082", "--container-auth-token-file", "/x"],
         "--serve-container-credentials / VEND_SIDECAR_SERVE_CONTAINER_CREDENTIALS: must be a loopback address"),
        (["--serve-container-credentials", "127.0.0.1:8082"], "needs --container-auth-token-file"),
        (["--serve-container-credentials", "127.0.0.1:0", "--container-auth-token-file", "/nonexistent/token"],
         "/nonexistent/token is missing, unreadable, empty"),
    ],
)
def test_bad_endpoint_settings_exit_2_with_one_line(flags: list[str], message: str, tmp_path: Path, token_dir, vendor) -> None:
    result = run_cli("--out", str(tmp_path / "out"), "--vendor-url", vendor.url, "--bucket", "artifacts",
                     "--token-file", str(token_dir.path), *flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not vendor.requests


def test_a_taken_port_is_a_config_error(tmp_path: Path, token_dir, vendor) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("--out", str(tmp_path / "out"), "--vendor-url", vendor.url, "--bucket", "artifacts",
                         "--token-file", str(token_dir.path), "--health-addr", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"--health-addr: cannot listen on 127.0.0.1:{port}" in result.stderr


# -- the liveness verdict, value by value (pure) ----------------------------------------


def status(phase: str, since: float) -> LoopStatus:
    return LoopStatus(started_at=0.0, phase=phase, phase_since=since)


@pytest.mark.parametrize(
    ("state", "heartbeat_age", "ok", "reason"),
    [
        (status("waiting", 0.0), 1.0, True, "alive (waiting)"),
        (status("backoff", 0.0), 1.0, True, "alive (backoff)"),  # failing is not wedged
        (status("vending", 990.0), 1.0, True, "alive (vending)"),
        (status("vending", 900.0), 1.0, False, "one refresh attempt has been running for 100 s"),
        (status("starting", 900.0), 1.0, False, "start-up (preparing OUT) has been running for 100 s"),
        (status("waiting", 0.0), 61.0, False, "the event loop has not run for 61 s"),
        (status("stopped", 999.0), 0.0, False, "the refresh loop has stopped"),
    ],
)
def test_liveness_verdict(state: LoopStatus, heartbeat_age: float, ok: bool, reason: str) -> None:
    verdict = liveness(state, now=1000.0, heartbeat_age=heartbeat_age, stall_after=60.0)
    assert verdict.ok is ok
    assert verdict.reason.startswith(reason)


def test_a_run_without_endpoints_never_imports_the_server_stack(tmp_path: Path, token_dir, vendor) -> None:
    """The endpoint modules (and prometheus-client, wsgiref) load only when asked for."""
    program = (
        "import sys\n"
        "from sidecar.cli import main\n"
        f"code = main(['--once', '--out', {str(tmp_path / 'out')!r}, '--vendor-url', {vendor.url!r},"
        f" '--bucket', 'artifacts', '--token-file', {str(token_dir.path)!r}])\n"
        "loaded = [m for m in ('prometheus_client', 'wsgiref', 'sidecar.endpoints', 'sidecar.metrics',"
        " 'sidecar.health', 'sidecar.serve') if m in sys.modules]\n"
        "print(code, loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, env=sidecar_env())
    assert result.stdout.strip() == "0 []", result.stderr
