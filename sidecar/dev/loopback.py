"""One way to serve a sandbox aiohttp app on a free loopback port."""

from __future__ import annotations

import socket

from aiohttp import web

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """An aiohttp app on ``host``:<free port>; ``start()`` returns its base URL."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1") -> None:
        self._app = app
        self._host = host
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        await web.SockSite(self._runner, sock).start()
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.url = f"http://{host}:{sock.getsockname()[1]}"
        return self.url

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
