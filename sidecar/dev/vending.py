"""The dev vending service: contract v1 (``shared/contract/vending-api-v1.md``), exactly.

``POST /v1/credentials`` runs the production service's steps, in this order:

1. **Authenticate** (401 ``invalid_token``): a ``Bearer`` token, an ES256 signature by
   a key in the issuer's JWKS (fetched over HTTP from its OIDC discovery document, and
   fetched again, at most every few seconds, when a token names an unknown ``kid``),
   the configured issuer and audience, ``exp``/``iat``/``sub`` present, not expired.
   If the issuer cannot be reached: 503 ``backend_unavailable`` with ``Retry-After``.
2. **Validate** the body (400 ``invalid_request``): strict JSON types, actions a
   non-empty subset of read/write/list, ``ttl_seconds`` a positive integer.
3. **Decide** with the grants file (403 ``denied`` with the contract's ``reason``):
   :func:`sidecar.dev.grants.decide`, the stand-in for flex-auth.
4. **Exchange** with the object store's STS: a signed ``AssumeRole`` of the grant's
   coarse role, narrowed by a session policy (:class:`~sidecar.dev.objectstore.StsBackend`).
   If STS fails: 503 ``backend_unavailable`` with ``Retry-After``.

Every answer, success or error, carries a fresh ``decision_id`` and echoes the
caller's ``X-Request-Id``; every decision is one audit log line (``vending.decision``)
with the request id, decision id, subject, tenant and outcome, never a token or key.

The lease: the answer's ``expiration`` is ``now + ttl_seconds``. STS sessions last at
least 900 s (the ``DurationSeconds`` minimum), so for shorter sandbox leases the
service announces the shorter lease and the session outlives it at the store (moto
never expires sessions anyway; see ``docs/sandbox.md``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import jwt
from aiohttp import web
from pydantic import ValidationError

from ..credentials import format_expiration
from ..logs import event
from ..sts import s3_policy
from .grants import CredentialRequest, Grants, decide
from .loopback import LoopbackServer
from .objectstore import StsBackend, StsBackendError

__all__ = ["DevVendingService", "JwksCache", "STS_MIN_DURATION"]

#: STS (AWS, MinIO, moto's client-side validation) refuses DurationSeconds below this.
STS_MIN_DURATION = 900
RETRY_AFTER = "2"
_LEEWAY = 5.0  # seconds of clock leeway on exp/iat, as verifiers usually allow


class _Unavailable(Exception):
    """A dependency (issuer JWKS, STS) is down: answer 503 with Retry-After."""


class JwksCache:
    """The issuer's key set, from its discovery document; refetched on an unknown ``kid``."""

    def __init__(self, issuer: str, *, clock: Callable[[], float] = time.monotonic, min_refetch: float = 5.0) -> None:
        self.issuer = issuer.rstrip("/")
        self._clock = clock
        self._min_refetch = min_refetch
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._http = httpx.AsyncClient(timeout=5.0, trust_env=False, follow_redirects=False)

    async def _fetch(self) -> None:
        try:
            discovery = (await self._http.get(f"{self.issuer}/.well-known/openid-configuration")).raise_for_status().json()
            if discovery.get("issuer") != self.issuer:
                raise _Unavailable("issuer's discovery document names another issuer")
            document = (await self._http.get(discovery["jwks_uri"])).raise_for_status().json()
            key_set = jwt.PyJWKSet.from_dict(document)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
            raise _Unavailable(f"cannot fetch the issuer's JWKS: {exc.__class__.__name__}") from exc
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        self._fetched_at = self._clock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if kid not in self._keys:
            stale = self._fetched_at is None or self._clock() - self._fetched_at >= self._min_refetch
            if stale:
                await self._fetch()
        return self._keys.get(kid)

    async def aclose(self) -> None:
        await self._http.aclose()


class DevVendingService:
    """aiohttp application serving contract v1 on 127.0.0.1."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        grants: Grants,
        backend: StsBackend,
        host: str = "127.0.0.1",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.grants = grants
        self.backend = backend
        self.jwks = JwksCache(self.issuer)
        self._host = host
        self._clock = clock
        self._server: LoopbackServer | None = None
        self.url = ""
        self.decisions: list[dict[str, object]] = []  # the audit trail, for tests and the banner

    # -- answers -----------------------------------------------------------------

    def _error(
        self,
        status: int,
        error: str,
        message: str,
        *,
        decision_id: str,
        request_id: str,
        reason: str | None = None,
        retry_after: str | None = None,
    ) -> web.Response:
        headers = {"X-Request-Id": request_id}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        body = {"error": error, "reason": reason, "message": message, "decision_id": decision_id}
        return web.json_response(body, status=status, headers=headers)

    def _audit(self, **fields: object) -> None:
        self.decisions.append(fields)
        level = logging.INFO if fields.get("outcome") == "granted" else logging.WARNING
        event(level, "vending.decision", **fields)

    # -- the four steps ------------------------------------------------------------

    async def _authenticate(self, header: str | None) -> dict[str, Any]:
        """Verified claims, or raise ``jwt.PyJWTError`` (401) / ``_Unavailable`` (503)."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise jwt.InvalidTokenError("no Bearer token")
        token = token.strip()
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str):
            raise jwt.InvalidTokenError("token header has no kid")
        key = await self.jwks.key(kid)
        if key is None:
            raise jwt.InvalidTokenError("token is signed by a key the issuer does not publish")
        return jwt.decode(
            token,
            key,
            algorithms=["ES256"],
            audience=self.audience,
            issuer=self.issuer,
            leeway=_LEEWAY,
            options={"require": ["exp", "iat", "iss", "sub", "aud"]},
        )

    async def _credentials(self, request: web.Request) -> web.Response:
        decision_id = f"dec-{uuid.uuid4().hex}"
        request_id = request.headers.get("X-Request-Id", "")[:128] or "none"
        audit: dict[str, object] = {"request_id": request_id, "decision_id": decision_id}

        try:
            claims = await self._authenticate(request.headers.get("Authorization"))
        except _Unavailable as exc:
            self._audit(**audit, outcome="unavailable", message=str(exc))
            return self._error(503, "backend_unavailable", str(exc), decision_id=decision_id, request_id=request_id, retry_after=RETRY_AFTER)
        except jwt.PyJWTError as exc:
            message = f"token rejected: {exc}"
            self._audit(**audit, outcome="invalid_token", message=message)
            return self._error(401, "invalid_token", message, decision_id=decision_id, request_id=request_id)
        audit.update(sub=claims.get("sub"), tenant=claims.get("tenant"))

        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            message = "request body is larger than 64 KiB"
            self._audit(**audit, outcome="invalid_request", message=message)
            return self._error(400, "invalid_request", message, decision_id=decision_id, request_id=request_id)
        try:
            body = CredentialRequest.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "body"
            message = f"{where}: {first.get('msg')}"
            self._audit(**audit, outcome="invalid_request", message=message)
            return self._error(400, "invalid_request", message, decision_id=decision_id, request_id=request_id)
        audit.update(bucket=body.bucket, prefix=body.prefix, actions=",".join(body.actions), ttl=body.ttl_seconds)

        decision = decide(self.grants, claims, body)
        if not decision.allowed or decision.grant is None:
            self._audit(**audit, outcome="denied", reason=decision.reason, message=decision.message)
            return self._error(403, "denied", decision.message, reason=decision.reason, decision_id=decision_id, request_id=request_id)

        try:
            keys, sts_expiration = await self.backend.assume(
                role_name=decision.grant.role_name,
                session_name=str(claims.get("sub")),
                duration=max(body.ttl_seconds, STS_MIN_DURATION),
                policy=s3_policy(body.bucket, body.prefix, body.actions),
            )
        except StsBackendError as exc:
            self._audit(**audit, outcome="unavailable", message=str(exc))
            return self._error(503, "backend_unavailable", str(exc), decision_id=decision_id, request_id=request_id, retry_after=RETRY_AFTER)

        now = self._clock()
        expiration = min(now + body.ttl_seconds, sts_expiration.timestamp())
        lease_id = f"lease-{uuid.uuid4().hex}"
        answer = {
            "access_key_id": keys["AccessKeyId"],
            "secret_access_key": keys["SecretAccessKey"],
            "session_token": keys["SessionToken"],
            "expiration": format_expiration(datetime.fromtimestamp(expiration, UTC)),
            "ttl_seconds": body.ttl_seconds,
            "decision_id": decision_id,
            "lease_id": lease_id,
            "backend": "moto-sts",
        }
        self._audit(
            **audit,
            outcome="granted",
            role=decision.grant.role_name,
            access_key_id=keys["AccessKeyId"],
            lease_id=lease_id,
            expiration=answer["expiration"],
        )
        return web.Response(
            body=json.dumps(answer).encode(),
            content_type="application/json",
            headers={"X-Request-Id": request_id, "Cache-Control": "no-store"},
        )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/v1/credentials", self._credentials)
        self._server = LoopbackServer(app, self._host)
        self.url = await self._server.start()
        return self.url

    async def aclose(self) -> None:
        if self._server is not None:
            await self._server.aclose()
            self._server = None
        await self.jwks.aclose()

    async def __aenter__(self) -> DevVendingService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):  # finish closing even when shutting down by cancellation
            await self.aclose()
