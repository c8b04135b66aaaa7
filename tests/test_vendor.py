"""The vendor client: unit tests over httpx.MockTransport, then a real loopback server
(plain HTTP and TLS with trustme certificates, including mTLS)."""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path

import httpx
import pytest
import trustme

from conftest import make_jwt
from sidecar import __version__
from sidecar.errors import ConfigError, InvalidAnswer, TransientVendorError
from sidecar.token import decode_token
from sidecar.vendor import VendorClient, build_http_client
from vendor_double import VendorDouble, derive, is_consistent, rfc3339

pytestmark = pytest.mark.anyio

TOKEN = decode_token(make_jwt().encode(), now=time.time())


def answer(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "access_key_id": "ASIAUNIT",
        "secret_access_key": "unit-secret",
        "session_token": "unit-session",
        "expiration": rfc3339(time.time() + 900),
        "ttl_seconds": 900,
    }
    doc.update(overrides)
    return doc


def client_for(handler, **kwargs) -> VendorClient:  # type: ignore[no-untyped-def]
    http = build_http_client(timeout=kwargs.pop("timeout", 2.0), transport=httpx.MockTransport(handler))
    return VendorClient(
        vendor_url=kwargs.pop("url", "https://vend.test/"),
        bucket="artifacts",
        prefix="tenant-a/",
        actions=["write", "read"],
        ttl_seconds=900,
        http=http,
    )


async def test_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer())

    client = client_for(handler)
    grant = await client.vend(TOKEN)
    await client.vend(TOKEN)
    request = seen[0]
    assert request.method == "POST" and str(request.url) == "https://vend.test/v1/credentials"
    assert request.headers["authorization"] == f"Bearer {TOKEN.value.get_secret_value()}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == f"vend-sidecar/{__version__}"
    assert uuid.UUID(request.headers["x-request-id"]).version == 4
    assert seen[1].headers["x-request-id"] != request.headers["x-request-id"]  # fresh per attempt
    assert json.loads(request.content) == {
        "protected_system": "object-storage",
        "bucket": "artifacts",
        "prefix": "tenant-a/",
        "actions": ["read", "write"],
        "ttl_seconds": 900,
    }
    assert grant.credentials.access_key_id == "ASIAUNIT"


async def test_redirect_is_not_followed() -> None:
    hits: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(str(request.url))
        return httpx.Response(307, headers={"Location": "https://evil.test/steal"})

    with pytest.raises(TransientVendorError, match="redirect") as info:
        await client_for(handler).vend(TOKEN)
    assert hits == ["https://vend.test/v1/credentials"]
    assert info.value.status == 307


async def test_body_over_64_kib_is_abandoned() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{" + b" " * (65 * 1024) + b"}")

    with pytest.raises(InvalidAnswer, match="64 KiB"):
        await client_for(handler).vend(TOKEN)


@pytest.mark.parametrize(
    "exc, message",
    [
        (httpx.ConnectTimeout("t"), "timed out connecting"),
        (httpx.ReadTimeout("t"), "timed out waiting for the answer"),
        (httpx.ConnectError("refused"), "cannot connect"),
        (httpx.RemoteProtocolError("eof"), "broke the HTTP exchange"),
        (httpx.ReadError("reset"), "connection failed while reading the answer: reset"),
    ],
)
async def test_transport_errors_are_transient(exc: Exception, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(TransientVendorError, match=message) as info:
        await client_for(handler).vend(TOKEN)
    assert info.value.request_id and TOKEN.value.get_secret_value() not in str(info.value)


# -- a real server on loopback ---------------------------------------------------------


def real_client(url: str, **kwargs) -> VendorClient:  # type: ignore[no-untyped-def]
    return VendorClient(
        vendor_url=url,
        bucket="artifacts",
        prefix="tenant-a/",
        actions=["read", "write", "list"],
        ttl_seconds=1800,
        http=build_http_client(timeout=5.0, **kwargs),
    )


async def test_real_server_round_trip(vendor: VendorDouble) -> None:
    client = real_client(vendor.url)
    try:
        grant = await client.vend(TOKEN, "rid-123")
    finally:
        await client.aclose()
    recorded = vendor.requests[-1]
    assert recorded.path == "/v1/credentials"
    assert recorded.headers["Authorization"] == f"Bearer {TOKEN.value.get_secret_value()}"
    assert recorded.headers["X-Request-Id"] == "rid-123"
    assert recorded.json["actions"] == ["read", "write", "list"]  # type: ignore[index]
    creds = grant.credentials
    assert is_consistent(creds.access_key_id, creds.secret_access_key.get_secret_value(), creds.session_token.get_secret_value())
    assert grant.decision_id and grant.lease_id and grant.backend == "minio"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_double(ca: trustme.CA, *, require_client_cert: bool = False) -> VendorDouble:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    if require_client_cert:
        ca.configure_trust(server_ctx)
        server_ctx.verify_mode = ssl.CERT_REQUIRED
    return VendorDouble(ssl_context=server_ctx)


async def test_tls_with_custom_ca(ca: trustme.CA, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with tls_double(ca) as double:
        client = real_client(double.url, ca_file=ca_file)
        try:
            grant = await client.vend(TOKEN)
        finally:
            await client.aclose()
    assert grant.credentials.access_key_id.startswith("ASIA")


async def test_tls_without_the_ca_fails_as_transient(ca: trustme.CA) -> None:
    with tls_double(ca) as double:
        client = real_client(double.url)  # certifi's roots do not know the test CA
        try:
            with pytest.raises(TransientVendorError, match="TLS with the vendor failed: .*certificate") :
                await client.vend(TOKEN)
        finally:
            await client.aclose()
        assert double.requests == []  # the token never left the client


async def test_mutual_tls(ca: trustme.CA, tmp_path: Path) -> None:
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"
    ca.cert_pem.write_to_path(str(ca_file))
    client_cert = ca.issue_cert("vend-sidecar.tenant-a")
    client_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    client_cert.private_key_pem.write_to_path(str(key_file))
    with tls_double(ca, require_client_cert=True) as double:
        client = real_client(double.url, ca_file=ca_file, client_cert=cert_file, client_key=key_file)
        anonymous = real_client(double.url, ca_file=ca_file)
        try:
            assert (await client.vend(TOKEN)).credentials.access_key_id
            with pytest.raises(TransientVendorError):
                await anonymous.vend(TOKEN)
        finally:
            await client.aclose()
            await anonymous.aclose()


def test_bad_ca_file_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigError, match="--ca-file"):
        build_http_client(timeout=1, ca_file=bogus)
    with pytest.raises(ConfigError, match="--client-cert"):
        build_http_client(timeout=1, client_cert=bogus, client_key=bogus)


def test_derive_is_self_checking() -> None:
    secret, token = derive("ASIA1")
    assert is_consistent("ASIA1", secret, token) and not is_consistent("ASIA2", secret, token)


async def test_a_trickling_answer_is_cut_at_the_attempt_limit() -> None:
    """Each byte arrives within the read timeout, but the whole attempt is bounded."""
    import asyncio

    from aiohttp import web

    async def trickle(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b" ")
            await asyncio.sleep(0.1)
        return response

    with VendorDouble() as double:
        double.script(trickle)
        client = VendorClient(
            vendor_url=double.url, bucket="artifacts", prefix="", actions=["read"], ttl_seconds=900,
            http=build_http_client(timeout=0.5),
        )
        try:
            with pytest.raises(TransientVendorError, match="longer than 1.5 s in total"):
                await client.vend(TOKEN)
        finally:
            await client.aclose()
