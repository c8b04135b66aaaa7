"""Shared fixtures: a vending double on loopback, kubelet-style token files, fake time."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from sidecar.publish import Publisher

sys.path.insert(0, str(Path(__file__).parent))

from vendor_double import VendorDouble  # noqa: E402

#: Environment variables tests never inherit from the developer's shell.
_ENV_PREFIX = "VEND_SIDECAR_"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VEND_SIDECAR_* variable leaks in from the outside; monkeypatch restores."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIX):
            monkeypatch.delenv(name)


def make_jwt(**claims: object) -> str:
    """An HS256 JWT with IAM-Profile-like claims (the sidecar never verifies it)."""
    now = int(time.time())
    base = {
        "iss": "https://key-cape.test",
        "sub": "system:serviceaccount:tenant-a:artifact-store",
        "aud": ["vend.platform"],
        "tenant": "tenant-a",
        "iat": now,
        "exp": now + 3600,
        "jti": f"jti-{time.time_ns()}",
    }
    base.update(claims)
    base = {k: v for k, v in base.items() if v is not None}
    return jwt.encode(base, "test-signing-key-not-a-secret-0123456789", algorithm="HS256")


class TokenDir:
    """A projected-token directory written the way kubelet writes it (..data swap)."""

    def __init__(self, root: Path, name: str = "vend-token") -> None:
        self.root = root
        self.name = name
        self.path = root / name
        self._writer = Publisher(root, file_mode=0o644)
        self._writer.prepare()
        self.tokens: list[str] = []

    def write(self, token: str | bytes) -> None:
        data = token.encode() if isinstance(token, str) else token
        self.tokens.append(data.decode(errors="replace"))
        self._writer.publish({self.name: data + b"\n"})


@pytest.fixture
def token_dir(tmp_path: Path) -> TokenDir:
    tokens = TokenDir(tmp_path / "tokens")
    tokens.write(make_jwt())
    return tokens


@pytest.fixture
def vendor() -> Iterator[VendorDouble]:
    with VendorDouble() as double:
        yield double


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


class FakeClock:
    """Virtual time: ``now()`` reads it, ``sleep()`` advances it and records the wait."""

    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        import anyio

        self.sleeps.append(seconds)
        self.t += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """moto_server as a real subprocess on loopback (S3, STS, IAM), one per module."""
    from sandbox_parts import MotoProcess

    server = MotoProcess(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def services(moto: object) -> Iterator[object]:
    """The local issuer and the dev vending service in front of ``moto``."""
    from sandbox_parts import DevServices

    with DevServices(moto.endpoint) as running:  # type: ignore[attr-defined]
        yield running
