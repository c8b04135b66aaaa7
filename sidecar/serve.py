"""A small threaded HTTP server for the sidecar's own endpoints (stdlib ``wsgiref``).

The health/metrics server and the container-credentials endpoint are WSGI apps
served by ``wsgiref`` with one daemon thread per connection (the same server
``prometheus_client.start_http_server`` uses), outside the refresh loop's event loop.
That is deliberate: a probe still gets an answer, with a reason, when the event
loop is blocked, and no extra dependency ships in the image. HTTP parsing is the
standard library's; nothing here reads a socket by hand.

Hardening over the plain ``wsgiref`` server:

* no reverse-DNS lookup of the bind address at start-up (``HTTPServer.server_bind``
  calls ``socket.getfqdn``, which can stall for seconds in a cluster);
* a per-connection socket timeout, so an idle or trickling client cannot hold a
  thread for ever;
* no per-request lines on stderr (request logs are the apps' business);
* IPv6 bind addresses work (``[::]:8081``);
* no polling: the serving thread blocks in ``select()`` until a connection arrives.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from .errors import ConfigError

__all__ = ["CONNECTION_TIMEOUT", "RunningServer", "start_server"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Seconds a connection may sit idle while its request is read or its answer written.
CONNECTION_TIMEOUT = 10.0


class _QuietHandler(WSGIRequestHandler):
    timeout = CONNECTION_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """No access log: the apps log what matters as structured events."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck client never blocks shutdown
    allow_reuse_address = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)  # no getfqdn()
        self.setup_environ()


class RunningServer:
    """A bound server answering on a daemon thread; :meth:`close` stops it."""

    def __init__(self, server: _Server, name: str) -> None:
        self._server = server
        # poll_interval=None: the serving thread sleeps in select() until a connection
        # arrives, instead of waking every 0.1 s (that polling cost an idle sidecar
        # ~80 ms of CPU a minute). close() wakes it with a connection of its own.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": None}, name=name, daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def close(self) -> None:
        """Stop serving: request the shutdown, wake select() with one connection,
        then close the socket."""
        stopper = threading.Thread(target=self._server.shutdown, name="server-shutdown", daemon=True)
        stopper.start()
        host, port = self.address
        wake_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        while stopper.is_alive():
            try:
                socket.create_connection((wake_host, port), timeout=1.0).close()
            except OSError:
                pass
            stopper.join(0.05)
        self._server.server_close()
        self._thread.join(5)


def start_server(host: str, port: int, app: WSGIApp, *, name: str, flag: str) -> RunningServer:
    """Bind ``host:port`` and serve ``app``; a bind failure is a :class:`ConfigError`
    naming ``flag`` (exit 2), because only a setting can fix it."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    except socket.gaierror as exc:
        raise ConfigError(f"{flag}: cannot resolve {host!r}: {exc.strerror}") from exc
    server_class = type("_BoundServer", (_Server,), {"address_family": family})
    try:
        server = server_class((host, port), _QuietHandler)
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    server.set_app(app)
    return RunningServer(server, name)
