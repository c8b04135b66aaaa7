"""The log stream of a running sidecar, text and JSON: stable event names, one event
per line, the audit fields on every success, and never a secret."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx
import pytest
from conftest import make_jwt
from sidecar_process import start_sidecar, wait_until  # noqa: F401
from vendor_double import error

AUDIT = ("request_id", "issuer", "sub", "tenant", "decision_id", "lease_id", "backend", "granted_ttl", "expiration")
TEXT_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (DEBUG|INFO|WARNING|ERROR) ([a-z_.]+)((?: [a-z_]+=(?:\"(?:[^\"\\]|\\.)*\"|\S+))*)$")
TEXT_FIELD = re.compile(r" ([a-z_]+)=(\"(?:[^\"\\]|\\.)*\"|\S+)")


def parse_text(line: str) -> dict[str, object]:
    match = TEXT_LINE.match(line)
    assert match, f"not one text event: {line!r}"
    doc: dict[str, object] = {"ts": match[1], "level": match[2].lower(), "event": match[3]}
    for key, value in TEXT_FIELD.findall(match[4]):
        doc[key] = json.loads(value) if value.startswith('"') else value
    return doc


def secrets_of(vendor, token_dir, *extra: str) -> list[str]:
    return [*vendor.secrets(), *token_dir.tokens, *extra]


def seen(process, name: str, log_format: str) -> bool:
    parse = json.loads if log_format == "json" else parse_text
    return any(parse(line)["event"] == name for line in list(process.lines))


def exercise(start_sidecar, vendor, token_dir, tmp_path: Path, log_format: str):  # noqa: F811
    """One run through the interesting events: a failure, a success, a served
    credential request, a token rotation, a clean stop; then a restart on the same OUT."""
    auth = tmp_path / "auth"
    auth.write_text("container-auth-secret-value")
    vendor.script(error(503, "backend_unavailable", retry_after="0"))
    sidecar = start_sidecar("--log-level", "debug", "--health-addr", "127.0.0.1:0",
                            "--serve-container-credentials", "127.0.0.1:0", "--container-auth-token-file", str(auth),
                            log_format=log_format)
    wait_until(lambda: seen(sidecar, "publish", log_format), what="publish")
    url = re.findall(r"(http://127\.0\.0\.1:\d+/v1/credentials)", sidecar.output)[0]
    assert httpx.get(url, headers={"Authorization": "container-auth-secret-value"}, timeout=5).status_code == 200
    token_dir.write(make_jwt(jti="rotated"))
    wait_until(lambda: seen(sidecar, "token.rotated", log_format), what="token.rotated")
    assert sidecar.stop(signal.SIGTERM) == 0
    again = start_sidecar(log_format=log_format)
    wait_until(lambda: seen(again, "publish", log_format), what="the second run's publish")
    again.stop()
    return sidecar, again, secrets_of(vendor, token_dir, "container-auth-secret-value")


EXPECTED = {
    "start", "health.listening", "container_credentials.listening", "token.loaded", "vend.attempt",
    "vend.failure", "vend.success", "publish", "refresh.scheduled", "container_credentials.served",
    "token.rotated", "shutdown", "exit",
}


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_events_and_audit_fields(log_format: str, start_sidecar, vendor, token_dir, tmp_path: Path) -> None:  # noqa: F811
    first, second, secrets = exercise(start_sidecar, vendor, token_dir, tmp_path, log_format)
    parse = json.loads if log_format == "json" else parse_text
    events = [parse(line) for line in first.lines]  # every line is exactly one event
    names = {doc["event"] for doc in events}
    assert EXPECTED <= names, EXPECTED - names
    assert "publish.found" in {parse(line)["event"] for line in second.lines}

    success = next(doc for doc in events if doc["event"] == "vend.success")
    issued = vendor.issued[0]
    assert {k: str(success[k]) for k in AUDIT} == {
        "request_id": vendor.requests[1].headers["X-Request-Id"],
        "issuer": "https://key-cape.test",
        "sub": "system:serviceaccount:tenant-a:artifact-store",
        "tenant": "tenant-a",
        "decision_id": issued["decision_id"],
        "lease_id": issued["lease_id"],
        "backend": "minio",
        "granted_ttl": str(issued["ttl_seconds"]),
        "expiration": issued["expiration"],
    }
    assert success["access_key_id"] == issued["access_key_id"]
    failure = next(doc for doc in events if doc["event"] == "vend.failure")
    assert failure["class"] == "transient" and str(failure["status"]) == "503"
    assert failure["request_id"] == vendor.requests[0].headers["X-Request-Id"]
    assert next(doc for doc in events if doc["event"] == "exit")["code"] in (0, "0")

    everything = first.output + second.output
    for secret in secrets:
        assert secret not in everything
