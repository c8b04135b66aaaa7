"""Credential vending API v1, the HTTP half: one POST per attempt, over httpx.

Transport rules from the contract: https (or http to loopback, checked at start-up
by :func:`sidecar.contract.check_vendor_url`), redirects never followed, answers
over 64 KiB abandoned, bounded connect and read timeouts, optional custom CA and
client certificate. httpx exceptions are translated here and nowhere else.

:func:`build_http_client` is the one factory; it accepts an ``httpx`` transport so
unit tests can hand it ``httpx.MockTransport``.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio
import httpx

from . import __version__
from .contract import MAX_BODY_BYTES, PATH, interpret, request_body
from .credentials import Grant
from .errors import ConfigError, InvalidAnswer, TransientVendorError
from .token import Token

__all__ = ["VendorClient", "build_http_client", "build_ssl_context"]

USER_AGENT = f"vend-sidecar/{__version__}"


def build_ssl_context(
    *, ca_file: Path | None = None, client_cert: Path | None = None, client_key: Path | None = None
) -> ssl.SSLContext:
    """TLS context: system-independent default roots (certifi) or ``--ca-file``; mTLS."""
    try:
        if ca_file is not None:
            context = ssl.create_default_context(cafile=str(ca_file))
        else:
            import certifi

            context = ssl.create_default_context(cafile=certifi.where())
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--ca-file / VEND_SIDECAR_CA_FILE: cannot load CA bundle {ca_file}: {exc}") from exc
    if client_cert is not None:
        try:
            context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "--client-cert/--client-key (VEND_SIDECAR_CLIENT_CERT/_KEY): cannot load the client "
                f"certificate and key: {exc.__class__.__name__}"
            ) from exc
    return context


def build_http_client(
    *,
    timeout: float,
    ca_file: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The single HTTP client of a run: one connection pool, reused across refreshes.

    ``trust_env=False``: proxies and CA paths come only from explicit settings, never
    from ``HTTPS_PROXY`` and friends inherited by the pod.
    """
    verify = build_ssl_context(ca_file=ca_file, client_cert=client_cert, client_key=client_key)
    return httpx.AsyncClient(
        verify=verify,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=1, keepalive_expiry=30.0),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        transport=transport,
    )


def _os_reason(exc: BaseException) -> str:
    """The strerror of the first OSError in ``exc``'s chain, else httpx's own text."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return str(exc) or exc.__class__.__name__


def _translate(exc: httpx.HTTPError, request_id: str, timeout: float) -> TransientVendorError:
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a connection",
        }.get(type(exc), "talking to the vendor")
        return TransientVendorError(f"vendor timed out {phase} (limit {timeout:g} s)", request_id=request_id)
    cause = exc.__context__ or exc.__cause__
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__context__ or cause.__cause__
    if isinstance(cause, ssl.SSLError):
        detail = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause.__class__.__name__
        return TransientVendorError(f"TLS with the vendor failed: {detail}", request_id=request_id)
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransientVendorError("vendor broke the HTTP exchange (connection closed or truncated answer)", request_id=request_id)
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        # httpx's message is often empty here; the OSError underneath says what happened.
        phase = "reading the answer" if isinstance(exc, httpx.ReadError) else "sending the request"
        return TransientVendorError(
            f"vendor connection failed while {phase}: {_os_reason(exc)} (connection reset or truncated answer)",
            request_id=request_id,
        )
    if isinstance(exc, httpx.ConnectError):
        return TransientVendorError(f"cannot connect to the vendor: {exc}", request_id=request_id)
    return TransientVendorError(f"vendor request failed: {exc.__class__.__name__}: {exc}", request_id=request_id)


class VendorClient:
    """Asks the vending service for one credential set per :meth:`vend` call."""

    def __init__(
        self,
        *,
        vendor_url: str,
        bucket: str,
        prefix: str,
        actions: Iterable[str],
        ttl_seconds: int,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        new_request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.url = vendor_url.rstrip("/") + PATH
        self.body = request_body(bucket=bucket, prefix=prefix, actions=actions, ttl_seconds=ttl_seconds)
        self._http = http
        self._clock = clock
        self._new_request_id = new_request_id

    @property
    def timeout(self) -> float:
        return self._http.timeout.read or 0.0

    @property
    def attempt_limit(self) -> float:
        """Overall bound on one attempt: the per-phase timeouts alone let a server that
        trickles one byte per read timeout hold an attempt forever."""
        return 3 * self.timeout

    async def vend(self, token: Token, request_id: str | None = None) -> Grant:
        """POST one request; return the validated :class:`Grant` or raise a VendorError."""
        request_id = request_id or self._new_request_id()
        headers = {
            "Authorization": f"Bearer {token.value.get_secret_value()}",
            "X-Request-Id": request_id,
        }
        try:
            with anyio.fail_after(self.attempt_limit):
                async with self._http.stream("POST", self.url, json=self.body, headers=headers) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_BODY_BYTES:
                            raise InvalidAnswer(
                                f"vendor answer exceeds {MAX_BODY_BYTES // 1024} KiB; stopped reading",
                                request_id=request_id,
                                status=response.status_code,
                            )
                    status, answer_headers = response.status_code, response.headers
        except httpx.HTTPError as exc:
            raise _translate(exc, request_id, self.timeout) from exc
        except TimeoutError as exc:
            raise TransientVendorError(
                f"vendor answer took longer than {self.attempt_limit:g} s in total", request_id=request_id
            ) from exc
        return interpret(status, answer_headers, bytes(body), now=self._clock(), request_id=request_id)

    async def aclose(self) -> None:
        await self._http.aclose()
