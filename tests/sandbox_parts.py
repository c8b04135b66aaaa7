"""Real sandbox parts for tests: moto_server as a subprocess, and the dev issuer plus
the dev vending service on loopback in their own thread and event loop.

Nothing is mocked: moto speaks S3/STS/IAM over HTTP, the vending service verifies
ES256 tokens against the issuer's JWKS fetched over HTTP, and the sidecar under test
runs as its own process. Every wait is a bounded poll of a condition.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sidecar.dev.grants import Grants
from sidecar.dev.issuer import LocalIssuer, TokenFile
from sidecar.dev.objectstore import Provisioned, StsBackend, enforce, provision
from sidecar.dev.vending import DevVendingService
from sidecar_process import wait_until

AUDIENCE = "vend.test.local"
TENANT = "tenant-a"
BUCKET = "artifacts"
PREFIX = "tenant-a/"

GRANTS = Grants.model_validate(
    {
        "grant": [
            {"tenant": TENANT, "bucket": BUCKET, "prefix": PREFIX, "actions": ["read", "write", "list"], "ttl_min": 2, "ttl_max": 3600},
            {"tenant": "tenant-b", "bucket": BUCKET, "prefix": "tenant-b/", "actions": ["read"], "ttl_min": 60, "ttl_max": 600},
        ]
    }
)


class MotoProcess:
    """``moto_server -H 127.0.0.1 -p 0`` as a child process; the port is read from its log."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.endpoint = ""
        self._proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self) -> MotoProcess:
        binary = Path(sys.executable).with_name("moto_server")
        self._proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Drain stderr for the whole life of the server (it logs every request), so the
        # pipe never fills and blocks moto.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

        def running_on() -> str | None:
            if self._proc is not None and self._proc.poll() is not None:
                raise AssertionError(f"moto_server exited with {self._proc.returncode}: {''.join(self._lines)[-2000:]}")
            for line in list(self._lines):
                match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
                if match:
                    return match.group(1)
            return None

        self.endpoint = wait_until(running_on, timeout=30, what="moto_server to listen")
        wait_until(self._answers, timeout=30, what="moto_server to answer")
        return self

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with self.log_file.open("w") as log:
            for line in self._proc.stderr:
                if len(self._lines) < 50:
                    self._lines.append(line)
                log.write(line)

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint}/moto-api/", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None


class DevServices:
    """The dev issuer and dev vending service (and the STS backend) in a thread.

    ``provision`` creates the bucket, parent user and roles in moto and turns IAM
    enforcement on first, exactly as ``vend-sidecar dev`` does.
    """

    def __init__(self, endpoint: str, *, grants: Grants = GRANTS, audience: str = AUDIENCE, sts_endpoint: str | None = None) -> None:
        self.endpoint = endpoint
        self.grants = grants
        self.audience = audience
        self.sts_endpoint = sts_endpoint  # override: point the backend somewhere else
        self.issuer = LocalIssuer()
        self.vending: DevVendingService | None = None
        self.provisioned: Provisioned | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.minted: list[str] = []

    @property
    def vendor_url(self) -> str:
        assert self.vending is not None
        return self.vending.url

    def mint(self, **overrides: Any) -> str:
        claims: dict[str, Any] = {"audience": self.audience, "subject": f"system:serviceaccount:{TENANT}:app", "tenant": TENANT, "lifetime": 600}
        claims.update(overrides)
        token = self.issuer.mint(**claims)
        self.minted.append(token)  # for secret-leak assertions
        return token

    def start(self, *, provisioned: Provisioned | None = None) -> DevServices:
        self.provisioned = provisioned
        self._thread = threading.Thread(target=self._serve, name="dev-services", daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise AssertionError(f"dev services did not start: {self._error!r}")
        return self

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._teardown())
        loop.close()

    async def _setup(self) -> None:
        if self.provisioned is None:
            self.provisioned = await provision(self.endpoint, self.grants)
            await enforce(self.endpoint)
        provisioned = self.provisioned
        if self.sts_endpoint is not None:
            provisioned = Provisioned(
                endpoint=self.sts_endpoint,
                access_key_id=provisioned.access_key_id,
                secret_access_key=provisioned.secret_access_key,
                role_arns=provisioned.role_arns,
            )
        self._backend = StsBackend(provisioned, timeout=2.0)
        await self.issuer.start()
        self.vending = DevVendingService(issuer=self.issuer.url, audience=self.audience, grants=self.grants, backend=self._backend)
        await self.vending.start()

    async def _teardown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.vending is not None:
            await self.vending.aclose()
        await self.issuer.aclose()
        await self._backend.aclose()

    def token_file(self, directory: Path, *, lifetime: float) -> TokenFile:
        """A kubelet-style token directory kept fresh by the issuer (new token at 80 %)."""
        assert self._loop is not None
        token_file = TokenFile(directory, lambda: self.mint(lifetime=lifetime), lifetime=lifetime)

        async def start() -> None:
            self._tasks.append(asyncio.current_task())  # type: ignore[arg-type]
            await token_file.run()

        asyncio.run_coroutine_threadsafe(start(), self._loop)
        wait_until(lambda: token_file.path.exists(), timeout=10, what="the first token")
        return token_file

    def stop_issuer(self) -> None:
        """Stop serving discovery/JWKS (the vending service must then answer 503)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.issuer.aclose(), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(20)

    def __enter__(self) -> DevServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
