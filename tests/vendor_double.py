"""A real HTTP vending-service double on loopback, serving contract v1.

It runs aiohttp.web in its own thread and event loop, so it serves both in-process
anyio tests and sidecar subprocesses. By default it grants credentials; tests queue
scripted answers (faults) with :meth:`VendorDouble.script`. Issued credential sets
are *self-checking*: the secret and session token are derived from the access key,
so a reader that mixes two generations is detected by :func:`is_consistent`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from multidict import CIMultiDict

Handler = Callable[[web.Request, "VendorDouble"], Awaitable[web.StreamResponse]]


def derive(access_key: str) -> tuple[str, str]:
    secret = hashlib.sha256(f"secret:{access_key}".encode()).hexdigest()[:40]
    token = "FwoGZX" + hashlib.sha256(f"token:{access_key}".encode()).hexdigest()
    return secret, token


def is_consistent(access_key: str, secret: str, token: str) -> bool:
    return derive(access_key) == (secret, token)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Recorded:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes
    at: float

    @property
    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class VendorDouble:
    host: str = "127.0.0.1"
    ssl_context: ssl.SSLContext | None = None
    lifetime: float = 3600.0
    #: Close every connection after its answer (so a TLS certificate swap takes effect).
    close_connections: bool = False
    requests: list[Recorded] = field(default_factory=list)
    issued: list[dict[str, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: deque[Handler] = deque()
        self._counter = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> VendorDouble:
        self._thread = threading.Thread(target=self._serve, name="vendor-double", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("vendor double did not start")
        return self

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.ssl_context)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> VendorDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ---------------------------------------------------------------

    def script(self, *handlers: Handler) -> None:
        """Queue answers; each request takes the next one, then the default grant."""
        with self.lock:
            self._script.extend(handlers)

    def pending(self) -> int:
        with self.lock:
            return len(self._script)

    def new_credentials(self, lifetime: float | None = None) -> dict[str, object]:
        lifetime = self.lifetime if lifetime is None else lifetime
        n = next(self._counter)
        access_key = f"ASIA{n:06d}{hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:10].upper()}"
        secret, token = derive(access_key)
        doc = {
            "access_key_id": access_key,
            "secret_access_key": secret,
            "session_token": token,
            "expiration": rfc3339(time.time() + lifetime),
            "ttl_seconds": int(lifetime),
            "decision_id": f"dec-{n:04d}",
            "lease_id": f"lease-{n:04d}",
            "backend": "minio",
        }
        self.issued.append(doc)
        return doc

    def secrets(self) -> list[str]:
        """Every secret value this double has handed out (for leak assertions)."""
        out: list[str] = []
        for doc in self.issued:
            out += [str(doc[k]) for k in ("secret_access_key", "session_token") if k in doc]  # a fault may drop one
        return out

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, CIMultiDict(request.headers), body, time.time()))
        with self.lock:
            handler = self._script.popleft() if self._script else None
        response = await (handler or grant())(request, self)
        if self.close_connections:
            response.force_close()
        return response


# -- scripted answers ------------------------------------------------------------------


def grant(lifetime: float | None = None, **overrides: object) -> Handler:
    """A 200 with fresh self-checking credentials; ``overrides`` replace or (None) drop fields."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        doc = double.new_credentials(lifetime)
        for key, value in overrides.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
        return web.json_response(doc)

    return handler


def error(status: int, code: str | None, reason: str | None = None, *, retry_after: str | None = None, decision_id: str | None = "dec-err") -> Handler:
    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        doc = {"error": code, "reason": reason, "message": f"{code} ({reason})", "decision_id": decision_id}
        return web.json_response(doc, status=status, headers=headers)

    return handler


def raw(status: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers={"Content-Type": content_type, **(headers or {})})

    return handler


def json_body(status: int, doc: object) -> Handler:
    """Any JSON document (e.g. a wrong-typed field) with the given status."""
    return raw(status, json.dumps(doc).encode())


def _abort(request: web.Request) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), not a polite FIN."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def reset() -> Handler:
    """Connection reset by peer before any answer."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        _abort(request)
        raise asyncio.CancelledError  # nothing more to say on a dead connection

    return handler


def hang(seconds: float) -> Handler:
    """Answer only after ``seconds`` (longer than the client's read timeout)."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await grant()(request, double)

    return handler


def truncated(declared: int = 4096) -> Handler:
    """A 200 that promises ``declared`` bytes, sends the start of a grant, then drops."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        body = json.dumps(double.new_credentials()).encode()
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = max(declared, len(body) + 1)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        _abort(request)
        raise asyncio.CancelledError

    return handler


def padded(size: int) -> Handler:
    """A grant whose body is ``size`` bytes long (an unknown field carries the padding)."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        doc: dict[str, object] = double.new_credentials()
        doc["padding"] = ""
        filler = size - len(json.dumps(doc))
        doc["padding"] = "x" * max(filler, 0)
        return web.json_response(doc)

    return handler


def redirect(location: str, status: int = 307) -> Handler:
    """A redirect to ``location`` (the sidecar must never follow it)."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return handler


def when_token(expected: str, then: Handler, otherwise: Handler) -> Handler:
    """``then`` if the bearer token is ``expected``, else ``otherwise`` (stays queued:
    the handler puts itself back until the expected token arrives)."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        if request.headers.get("Authorization") == f"Bearer {expected}":
            return await then(request, double)
        with double.lock:
            double._script.appendleft(handler)
        return await otherwise(request, double)

    return handler


def trickle(interval: float, seconds: float) -> Handler:
    """A 200 whose body drips one byte per ``interval`` for ``seconds``: each read
    finishes within the client's read timeout, the whole answer never does."""

    async def handler(request: web.Request, double: VendorDouble) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(int(seconds / interval)):
            await response.write(b" ")
            await asyncio.sleep(interval)
        await response.write(json.dumps(double.new_credentials()).encode())
        return response

    return handler
