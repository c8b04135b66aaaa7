"""The dev vending service over real HTTP, against moto in server mode (enforcement on).

Every answer is also run through the sidecar's own contract parser
(:func:`sidecar.contract.interpret`), so the service and the client agree on the
contract, not just on what this test expects.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest

from sidecar.contract import interpret
from sidecar.dev.issuer import LocalIssuer
from sidecar.logs import JsonFormatter
from sidecar.errors import AuthRejected, Denied, TransientVendorError

from sandbox_parts import AUDIENCE, BUCKET, PREFIX, TENANT, DevServices, MotoProcess

BODY = {"protected_system": "object-storage", "bucket": BUCKET, "prefix": PREFIX, "actions": ["read", "write"], "ttl_seconds": 300}


def post(services: DevServices, body: object = BODY, token: str | None = None, *, headers: dict[str, str] | None = None) -> httpx.Response:
    request_id = str(uuid.uuid4())
    sent = {"X-Request-Id": request_id, **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if isinstance(body, bytes):
        sent["Content-Type"] = "application/json"
        response = httpx.post(f"{services.vendor_url}/v1/credentials", headers=sent, content=body, timeout=10)
    else:
        response = httpx.post(f"{services.vendor_url}/v1/credentials", headers=sent, json=body, timeout=10)
    assert response.headers["X-Request-Id"] == request_id
    assert response.headers["Content-Type"].startswith("application/json")
    return response


def parsed(response: httpx.Response) -> object:
    try:
        return interpret(response.status_code, response.headers, response.content, now=time.time())
    except (Denied, AuthRejected, TransientVendorError) as exc:
        return exc


def test_grant_answers_contract_v1_and_the_credentials_work_at_the_store(services: DevServices) -> None:
    response = post(services, token=services.mint())
    assert response.status_code == 200
    doc = response.json()
    assert doc["decision_id"].startswith("dec-") and doc["lease_id"].startswith("lease-")
    assert doc["ttl_seconds"] == 300 and doc["backend"] == "moto-sts"
    grant = parsed(response)
    assert not isinstance(grant, Exception)
    assert 295 <= grant.lifetime <= 301  # type: ignore[attr-defined]
    assert grant.decision_id == doc["decision_id"]  # type: ignore[attr-defined]
    # The keys are real STS session credentials of the tenant's role.
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=services.endpoint,
        region_name="us-east-1",
        aws_access_key_id=doc["access_key_id"],
        aws_secret_access_key=doc["secret_access_key"],
        aws_session_token=doc["session_token"],
    )
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}vending-test", Body=b"x")
    assert s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}vending-test")["Body"].read() == b"x"


def _other_issuer_token(services: DevServices) -> str:
    stranger = LocalIssuer()
    stranger.url = services.issuer.url  # same iss claim, different key: signature must fail
    return stranger.mint(audience=AUDIENCE, subject="mallory", tenant=TENANT, lifetime=600)


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda s: None, id="no-authorization"),
        pytest.param(lambda s: "not-a-jwt", id="garbage"),
        pytest.param(lambda s: s.mint(audience="someone-else"), id="wrong-audience"),
        pytest.param(lambda s: s.mint(exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda s: s.mint(iss="https://elsewhere.example"), id="wrong-issuer"),
        pytest.param(lambda s: s.mint(sub=None), id="no-sub"),
        pytest.param(_other_issuer_token, id="unknown-key"),
        pytest.param(lambda s: jwt.encode({"iss": s.issuer.url, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60, "iat": int(time.time())}, "k" * 32, algorithm="HS256", headers={"kid": s.issuer.kid}), id="hs256-with-real-kid"),
    ],
)
def test_bad_tokens_get_401_invalid_token(services: DevServices, make_token) -> None:  # type: ignore[no-untyped-def]
    token = make_token(services)
    response = post(services, token=token)
    assert response.status_code == 401, response.text
    doc = response.json()
    assert doc["error"] == "invalid_token" and doc["decision_id"].startswith("dec-")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert isinstance(parsed(response), AuthRejected)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param({**BODY, "actions": []}, id="no-actions"),
        pytest.param({**BODY, "actions": ["read", "delete"]}, id="unknown-action"),
        pytest.param({**BODY, "ttl_seconds": True}, id="ttl-bool"),
        pytest.param({**BODY, "ttl_seconds": "300"}, id="ttl-string"),
        pytest.param({**BODY, "ttl_seconds": 0}, id="ttl-zero"),
        pytest.param({k: v for k, v in BODY.items() if k != "bucket"}, id="no-bucket"),
        pytest.param({**BODY, "protected_system": "databases"}, id="other-system"),
        pytest.param(b'{"pad": "' + b"x" * 70_000 + b'"}', id="over-64-KiB"),
    ],
)
def test_malformed_requests_get_400_invalid_request(services: DevServices, body: object) -> None:
    response = post(services, body, token=services.mint())
    assert response.status_code == 400, response.text
    doc = response.json()
    assert doc["error"] == "invalid_request" and doc["decision_id"].startswith("dec-")
    error = parsed(response)
    assert isinstance(error, Denied) and error.error == "invalid_request"


@pytest.mark.parametrize(
    ("claims", "body", "reason"),
    [
        ({"tenant": "tenant-z"}, BODY, "tenant_mismatch"),
        ({}, {**BODY, "bucket": "other-bucket"}, "bucket_not_allowed"),
        ({}, {**BODY, "prefix": "tenant-b/"}, "prefix_not_allowed"),
        ({}, {**BODY, "prefix": ""}, "prefix_not_allowed"),
        ({"tenant": "tenant-b"}, {**BODY, "prefix": "tenant-b/", "actions": ["read", "write"]}, "action_not_allowed"),
        ({}, {**BODY, "ttl_seconds": 7200}, "ttl_out_of_bounds"),
        ({}, {**BODY, "ttl_seconds": 1}, "ttl_out_of_bounds"),
    ],
)
def test_policy_refusals_get_403_denied_with_the_contract_reason(services: DevServices, claims: dict[str, str], body: dict[str, object], reason: str) -> None:
    response = post(services, body, token=services.mint(**claims))
    assert response.status_code == 403, response.text
    doc = response.json()
    assert doc["error"] == "denied" and doc["reason"] == reason and doc["decision_id"].startswith("dec-")
    error = parsed(response)
    assert isinstance(error, Denied) and error.reason == reason and error.decision_id == doc["decision_id"]


def test_sub_prefix_is_granted_by_the_enclosing_grant(services: DevServices) -> None:
    response = post(services, {**BODY, "prefix": f"{PREFIX}builds/"}, token=services.mint())
    assert response.status_code == 200


def test_decision_ids_are_fresh_and_audit_lines_hold_no_secret(services: DevServices, caplog: pytest.LogCaptureFixture) -> None:
    token = services.mint()
    with caplog.at_level(logging.INFO, logger="vend_sidecar"):
        first, second = post(services, token=token), post(services, token=token)
    assert first.json()["decision_id"] != second.json()["decision_id"]
    text = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert text.count("vending.decision") == 2
    assert token not in text
    for answer in (first.json(), second.json()):
        assert answer["access_key_id"] in text  # the audit line names the key id ...
        assert answer["secret_access_key"] not in text and answer["session_token"] not in text  # ... never a secret


def test_sts_unreachable_is_503_with_retry_after(moto: MotoProcess, services: DevServices) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    broken = DevServices(moto.endpoint, sts_endpoint=dead).start(provisioned=services.provisioned)
    try:
        response = post(broken, token=broken.mint())
    finally:
        broken.stop()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "2"
    doc = response.json()
    assert doc["error"] == "backend_unavailable" and doc["decision_id"].startswith("dec-")
    error = parsed(response)
    assert isinstance(error, TransientVendorError) and error.retry_after == 2.0


def test_issuer_unreachable_is_503_not_401(services: DevServices, moto: MotoProcess) -> None:
    fresh = DevServices(moto.endpoint).start(provisioned=services.provisioned)
    try:
        token = fresh.mint()
        fresh.stop_issuer()
        response = post(fresh, token=token)
    finally:
        fresh.stop()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"] == "backend_unavailable"
