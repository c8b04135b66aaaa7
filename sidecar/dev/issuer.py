"""A local identity issuer: the sandbox's stand-in for key-cape.

* An ES256 (P-256) key pair made at start and kept in memory only; its ``kid`` is the
  RFC 7638 JWK thumbprint.
* OIDC discovery (``/.well-known/openid-configuration``) and the JWKS (``/jwks.json``)
  served over HTTP on loopback, so the vending service verifies tokens the way it
  would against a real issuer: by fetching the key set, not by sharing a secret.
* :meth:`LocalIssuer.mint` makes IAM Profile v0.2 tokens: ``iss``, ``sub``, ``aud``,
  ``tenant``, ``principal_type``, ``assurance``, ``iat``, ``exp``, ``jti``.
* :class:`TokenFile` keeps a token file fresh the way kubelet keeps a projected
  service-account token fresh: the directory is written with the same ``..data``
  symlink swap (:class:`sidecar.publish.Publisher`), and a new token replaces the old
  one once 80 % of its life has passed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import jwt
from aiohttp import web
from anyio.abc import TaskStatus
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ..publish import Publisher
from .loopback import LoopbackServer

__all__ = ["LocalIssuer", "ROTATE_AT", "TokenFile", "jwk_thumbprint"]

#: kubelet refreshes a projected token once 80 % of its TTL has passed.
ROTATE_AT = 0.8


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC public JWK (SHA-256 over the required members)."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


class LocalIssuer:
    """Mints and publishes the keys for IAM Profile v0.2 tokens on 127.0.0.1."""

    def __init__(self, *, host: str = "127.0.0.1", clock: Callable[[], float] = time.time) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        self.kid = jwk_thumbprint(public)
        self.jwk = {**public, "kid": self.kid, "use": "sig", "alg": "ES256"}
        self._host = host
        self._clock = clock
        self._server: LoopbackServer | None = None
        self.url = ""  # set by start(): http://127.0.0.1:PORT

    # -- tokens ------------------------------------------------------------------

    def mint(
        self,
        *,
        audience: str | list[str],
        subject: str,
        tenant: str,
        lifetime: float,
        principal_type: str = "workload",
        assurance: str = "low",
        **extra: object,
    ) -> str:
        """A signed token; ``extra`` claims override the standard ones (tests use it)."""
        now = int(self._clock())
        claims: dict[str, object] = {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "tenant": tenant,
            "principal_type": principal_type,
            "assurance": assurance,
            "iat": now,
            "exp": now + int(lifetime),
            "jti": str(uuid.uuid4()),
        }
        claims.update(extra)
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})

    # -- HTTP --------------------------------------------------------------------

    def discovery(self) -> dict[str, object]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks.json",
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["iss", "sub", "aud", "tenant", "principal_type", "assurance", "iat", "exp", "jti"],
        }

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(self.discovery())

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.jwk]})

    async def start(self) -> str:
        """Serve discovery and JWKS on a free loopback port; returns the issuer URL."""
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks.json", self._jwks)
        self._server = LoopbackServer(app, self._host)
        self.url = await self._server.start()
        return self.url

    async def aclose(self) -> None:
        if self._server is not None:
            await self._server.aclose()
            self._server = None

    async def __aenter__(self) -> LocalIssuer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):  # finish closing even when shutting down by cancellation
            await self.aclose()


class TokenFile:
    """A projected-token directory kept fresh kubelet-style (``..data`` swap at 80 %)."""

    def __init__(
        self,
        directory: Path,
        mint: Callable[[], str],
        *,
        lifetime: float,
        name: str = "token",
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / name
        self._name = name
        self._mint = mint
        self.lifetime = lifetime
        self._sleep = sleep
        self._writer = Publisher(self.directory, file_mode=0o644)
        self.rotations = 0

    def write(self) -> None:
        """Mint a token and swap it in (one generation, fsynced, like kubelet plus fsync)."""
        if self.rotations == 0:
            self._writer.prepare()
        self._writer.publish({self._name: self._mint().encode()})
        self.rotations += 1

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write the first token, report started, then rotate at 80 % of each life."""
        await anyio.to_thread.run_sync(self.write)
        task_status.started()
        while True:
            await self._sleep(self.lifetime * ROTATE_AT)
            await anyio.to_thread.run_sync(self.write)
