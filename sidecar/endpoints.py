"""Start and stop the optional HTTP endpoints of a run (imported only when asked for).

``--health-addr`` serves ``/healthz``, ``/readyz`` and ``/metrics`` on one port;
``--serve-container-credentials`` serves the AWS container-credentials endpoint on
a loopback port. Both run on daemon threads (:mod:`sidecar.serve`); the event-loop
heartbeat that ``/healthz`` reads runs in the caller's task group.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .container_credentials import PATH as CONTAINER_PATH
from .container_credentials import container_credentials_app, read_auth_token
from .errors import ConfigError
from .health import Heartbeat, health_app
from .logs import event
from .loop import LoopObserver, LoopStatus
from .serve import RunningServer, start_server
from .settings import RunSettings, parse_host_port

__all__ = ["Endpoints"]


class Endpoints:
    """The run's endpoints; ``observer`` goes to the refresh loop (metrics)."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        # A beat a quarter of the stall limit apart (at most 15 s): fine enough for
        # /healthz, and few enough wake-ups to keep an idle sidecar near 4 ms CPU a minute.
        self.heartbeat = Heartbeat(interval=min(15.0, settings.stall_after_seconds / 4))
        self.observer: LoopObserver | None = None
        self._metrics = None
        self._servers: list[RunningServer] = []
        if settings.health_addr is not None:
            from .metrics import Metrics

            self._metrics = Metrics()
            self.observer = self._metrics
        token_file = settings.container_auth_token_file
        if settings.serve_container_credentials is not None and token_file is not None:
            if read_auth_token(Path(token_file)) is None:
                raise ConfigError(
                    f"--container-auth-token-file / VEND_SIDECAR_CONTAINER_AUTH_TOKEN_FILE: {token_file} is "
                    "missing, unreadable, empty or larger than 4 KiB; it must hold the token callers send"
                )

    def start(self, status: LoopStatus) -> None:
        """Bind every configured port (ConfigError on failure, exit 2) and serve."""
        settings = self.settings
        try:
            if settings.health_addr is not None and self._metrics is not None:
                from prometheus_client import make_wsgi_app

                self._metrics.watch(status)
                host, port = parse_host_port(settings.health_addr)
                app = health_app(
                    status=status,
                    out=settings.out,
                    min_remaining=settings.min_remaining,
                    stall_after=settings.stall_after_seconds,
                    heartbeat=self.heartbeat,
                    metrics_app=make_wsgi_app(self._metrics.registry),
                )
                server = start_server(host, port, app, name="health", flag="--health-addr")
                self._servers.append(server)
                event(logging.INFO, "health.listening", url=server.url, paths="/healthz,/readyz,/metrics",
                      min_remaining=settings.min_remaining, stall_after=settings.stall_after_seconds)
            if settings.serve_container_credentials is not None and settings.container_auth_token_file is not None:
                host, port = parse_host_port(settings.serve_container_credentials)
                app = container_credentials_app(out=settings.out, auth_token_file=settings.container_auth_token_file)
                server = start_server(host, port, app, name="container-credentials", flag="--serve-container-credentials")
                self._servers.append(server)
                event(logging.INFO, "container_credentials.listening", url=server.url + CONTAINER_PATH,
                      auth_token_file=str(settings.container_auth_token_file))
        except BaseException:
            self.close()
            raise

    async def run_until_cancelled(self) -> None:
        """Beat the heartbeat until the run ends, then close every port."""
        try:
            await self.heartbeat.run()
        finally:
            self.close()

    def close(self) -> None:
        while self._servers:
            self._servers.pop().close()
