"""The AWS container-credentials endpoint of a running sidecar: real HTTP, and a real
botocore credential chain that resolves through it and picks up rotations."""

from __future__ import annotations

import threading
from pathlib import Path

import botocore.session
import httpx
import pytest
from sidecar_process import start_sidecar, wait_until  # noqa: F401
from test_health import gated_grant
from vendor_double import is_consistent

from sidecar.consumer import read_credentials

AUTH = "vend-test-container-auth-0123456789abcdef"


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    path = tmp_path / "container-auth"
    path.write_text(AUTH)  # no trailing newline: botocore refuses a header with one
    return path


def serve_flags(auth_file: Path) -> tuple[str, ...]:
    return ("--serve-container-credentials", "127.0.0.1:0", "--container-auth-token-file", str(auth_file))


@pytest.fixture
def container_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point botocore's chain at the endpoint only (no env keys, files or IMDS)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def point_at(url: str, token_file: Path) -> None:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url)
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))

    return point_at


def test_botocore_resolves_and_refreshes_through_the_endpoint(start_sidecar, vendor, out_dir, auth_file, container_env) -> None:  # noqa: F811
    # Leases of 4 s: the sidecar rotates every ~2.7 s, and botocore (whose refresh
    # windows are 10-15 min) fetches again on every use, so each use goes through
    # the endpoint and must follow the rotation.
    vendor.lifetime = 4.0
    sidecar = start_sidecar(*serve_flags(auth_file))
    container_env(sidecar.url("container_credentials.listening"), auth_file)
    sidecar.wait_event("publish")

    credentials = botocore.session.Session().get_credentials()
    assert credentials is not None and credentials.method == "container-role"
    first = credentials.get_frozen_credentials()
    assert first.access_key in {doc["access_key_id"] for doc in vendor.issued}
    assert is_consistent(first.access_key, first.secret_key, first.token)

    def rotated():
        frozen = credentials.get_frozen_credentials()
        return frozen if frozen.access_key != first.access_key else None

    later = wait_until(rotated, what="botocore to pick up a rotated set")
    assert later.access_key in {doc["access_key_id"] for doc in vendor.issued}
    assert is_consistent(later.access_key, later.secret_key, later.token)
    sidecar.wait_event("vend.success", access_key_id=later.access_key)


def test_endpoint_answers_with_the_published_set(start_sidecar, vendor, out_dir, auth_file) -> None:  # noqa: F811
    gate = threading.Event()
    vendor.script(gated_grant(gate))
    sidecar = start_sidecar(*serve_flags(auth_file))
    url = sidecar.url("container_credentials.listening")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1/credentials")

    not_yet = httpx.get(url, headers={"Authorization": AUTH}, timeout=5)
    assert not_yet.status_code == 503
    assert not_yet.json()["code"] == "CredentialsNotReady"

    gate.set()
    sidecar.wait_event("publish")
    answer = httpx.get(url, headers={"Authorization": AUTH}, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    published = read_credentials(out_dir)
    assert answer.json() == {
        "AccessKeyId": published.access_key_id,
        "SecretAccessKey": published.secret_access_key.get_secret_value(),
        "Token": published.session_token.get_secret_value(),
        "Expiration": published.expiration_text,
    }
    assert httpx.get(url.replace("/v1/credentials", "/"), headers={"Authorization": AUTH}, timeout=5).status_code == 404
    assert httpx.post(url, headers={"Authorization": AUTH}, timeout=5).status_code == 405


def test_endpoint_requires_the_current_auth_token(start_sidecar, vendor, auth_file) -> None:  # noqa: F811
    sidecar = start_sidecar(*serve_flags(auth_file))
    url = sidecar.url("container_credentials.listening")
    sidecar.wait_event("publish")

    assert httpx.get(url, timeout=5).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": AUTH + "x"}, timeout=5)
    assert wrong.status_code == 403
    assert set(wrong.json()) == {"code", "message"}
    assert httpx.get(url, headers={"Authorization": AUTH[:-1]}, timeout=5).status_code == 403

    # The file is re-read on every request: a rotated token takes effect at once.
    auth_file.write_text("rotated-container-auth-token")
    assert httpx.get(url, headers={"Authorization": AUTH}, timeout=5).status_code == 403
    assert httpx.get(url, headers={"Authorization": "rotated-container-auth-token"}, timeout=5).status_code == 200

    # A vanished token file locks everyone out (500) rather than letting anyone in.
    auth_file.unlink()
    assert httpx.get(url, headers={"Authorization": "rotated-container-auth-token"}, timeout=5).status_code == 500
    denied = [e for e in sidecar.events() if e["event"] == "container_credentials.denied"]
    assert {e["reason"] for e in denied} == {"no Authorization header", "wrong Authorization"}
    assert AUTH not in sidecar.output and "rotated-container-auth-token" not in sidecar.output


def test_endpoint_never_serves_a_mixed_set_during_rotations(start_sidecar, vendor, auth_file) -> None:  # noqa: F811
    # Leases of 2 s: a new generation about every second while the test asks
    # continuously; every answer must be one complete, self-consistent set.
    vendor.lifetime = 2.0
    sidecar = start_sidecar(*serve_flags(auth_file))
    url = sidecar.url("container_credentials.listening")
    sidecar.wait_event("publish")
    seen: set[str] = set()
    answers = 0
    with httpx.Client(headers={"Authorization": AUTH}, timeout=5) as client:

        def three_generations() -> bool:
            nonlocal answers
            response = client.get(url)
            if response.status_code == 503:  # expired before a late refresh: refused, never mixed
                assert response.json()["code"] == "CredentialsNotReady"
                return False
            doc = response.raise_for_status().json()
            answers += 1
            assert is_consistent(doc["AccessKeyId"], doc["SecretAccessKey"], doc["Token"]), doc["AccessKeyId"]
            seen.add(doc["AccessKeyId"])
            return len(seen) >= 3

        wait_until(three_generations, what="three generations through the endpoint")
    assert answers > len(seen)
