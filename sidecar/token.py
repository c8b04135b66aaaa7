"""The pod's identity token: read fresh before every vend, decoded for logs only.

The token is an IAM Profile v0.2 JWT or a projected service-account token. kubelet
rotates it by swapping the ``..data`` symlink in the token's directory (see
``shared/notes/facts.md``), so the file is opened anew for every read and never held
open, and :class:`TokenWatch` watches the *directory*.

The claims are decoded with pyjwt *without* verifying the signature: the vending
service verifies; the sidecar only wants ``iss``, ``sub``, ``tenant``, ``aud`` and
``exp`` for its audit log and to say early and clearly when a token is expired, not a
JWT, or minted for the wrong audience.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import jwt
from pydantic import SecretStr

from .errors import TokenError

__all__ = ["MAX_TOKEN_BYTES", "WATCH_STEP_MS", "Token", "TokenWatch", "decode_token", "read_token"]

MAX_TOKEN_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and its (unverified) claims. ``repr`` never shows the token."""

    value: SecretStr = field(repr=False)
    issuer: str | None
    subject: str | None
    tenant: str | None
    audience: tuple[str, ...]
    expires_at: float | None
    fingerprint: str  # sha256 prefix, to tell rotations apart without the value

    def audit_fields(self) -> dict[str, object]:
        return {"issuer": self.issuer, "sub": self.subject, "tenant": self.tenant}


def _claim_str(claims: dict[str, object], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) else None


def _numeric_date(exp: object) -> float | None:
    """The ``exp`` claim as seconds, None when absent; a TokenError when it is not a
    finite NumericDate (RFC 7519 section 2), e.g. a string, ``1e400`` or NaN."""
    if exp is None:
        return None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        try:
            value = float(exp)
        except OverflowError:
            value = math.inf
        if math.isfinite(value):
            return value
    raise TokenError("token claim 'exp' is not a finite number of seconds since the epoch; the issuer minted a bad JWT")


def decode_token(raw: bytes, *, now: float, audience: str | None = None) -> Token:
    """Strip white space, decode the JWT claims (unverified) and check the obvious.

    Raises :class:`TokenError` with a message that says what to fix; the message never
    contains the token or any part of it.
    """
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise TokenError("token file does not hold an ASCII JWT") from exc
    if not text:
        raise TokenError("token file is empty (kubelet may not have written it yet)")
    if any(ch.isspace() for ch in text):
        raise TokenError("token file holds white space inside the token; it must hold one JWT")
    try:
        claims = jwt.decode(text, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenError("token file does not hold a JWT (expected header.payload.signature)") from exc
    except Exception as exc:  # pyjwt lets a few decoding errors through untranslated
        raise TokenError("token file does not hold a decodable JWT") from exc
    if not isinstance(claims, dict):
        raise TokenError("token claims are not a JSON object")

    expires_at = _numeric_date(claims.get("exp"))
    if expires_at is not None and expires_at <= now:
        raise TokenError(
            f"token expired {int(now - expires_at)} s ago; kubelet should have rotated it "
            "(check the projected volume's expirationSeconds and that the pod's node is healthy)"
        )
    aud = claims.get("aud")
    audiences = (aud,) if isinstance(aud, str) else tuple(a for a in aud if isinstance(a, str)) if isinstance(aud, list) else ()
    if audience is not None and audience not in audiences:
        shown = ", ".join(audiences) or "none"
        raise TokenError(
            f"token audience is [{shown}] but --audience is {audience!r}; set "
            f"'audience: {audience}' on the projected serviceAccountToken volume source"
        )
    return Token(
        value=SecretStr(text),
        issuer=_claim_str(claims, "iss"),
        subject=_claim_str(claims, "sub"),
        tenant=_claim_str(claims, "tenant"),
        audience=audiences,
        expires_at=expires_at,
        fingerprint=hashlib.sha256(text.encode()).hexdigest()[:12],
    )


def _read_file(path: Path) -> bytes:
    # Opened anew each time (kubelet swaps the file under us) and never held open.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise TokenError(f"token file {path} does not exist; mount the projected token there or set --token-file") from exc
    except PermissionError as exc:
        raise TokenError(f"token file {path} is not readable by uid {os.getuid()}; fix its mode or the pod's fsGroup") from exc
    except OSError as exc:
        raise TokenError(f"token file {path} cannot be opened: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES + 1)
    except IsADirectoryError as exc:
        raise TokenError(f"token file {path} is a directory; point --token-file at the token itself") from exc
    except OSError as exc:
        raise TokenError(f"token file {path} cannot be read: {exc.strerror}") from exc
    if len(data) > MAX_TOKEN_BYTES:
        raise TokenError(f"token file {path} is larger than {MAX_TOKEN_BYTES} bytes; it must hold one JWT")
    return data


def read_token(path: Path, *, now: float, audience: str | None = None) -> Token:
    """Read and decode the token file; see :func:`decode_token`."""
    return decode_token(_read_file(path), now=now, audience=audience)


#: How often (ms) watchfiles' worker wakes to check its stop event and settle a burst
#: of changes. Its default, 50 ms, cost an idle sidecar ~60 ms of CPU a minute and
#: once a second still ~4-5 ms (benchmarks/idle.py, ~80 us a wake-up on a 2-core VM);
#: a rotation only needs noticing within seconds (it wakes an auth backoff of seconds
#: to minutes), so a rotation is seen one to two steps after it happens. The step
#: never delays shutdown: the watch runs in a daemon thread nobody waits for.
WATCH_STEP_MS = 2000


class TokenWatch:
    """Watches the token's directory and calls ``on_change`` in the event loop.

    Uses watchfiles (inotify) on the *directory*, because kubelet publishes a rotation
    by renaming ``..data`` there, which a watch on the file itself would miss.

    The watch runs ``watchfiles.watch`` in its own daemon thread and hands each batch
    of changes to the event loop with ``anyio.from_thread.run_sync``. It is a daemon
    thread rather than an anyio worker because watchfiles' worker notices its stop
    event only at its next wake-up (:data:`WATCH_STEP_MS`), and nothing should wait for
    that: :meth:`stop` returns at once, the thread ends by itself within a step, and
    a process that exits first simply leaves it behind. If the directory does not
    exist yet, the thread looks again every ``retry_interval`` seconds; that is the
    only timer here, and it runs only in that degraded case.
    """

    def __init__(self, path: Path, on_change: Callable[[], None], *, retry_interval: float = 5.0) -> None:
        self.directory = Path(path).parent
        self._on_change = on_change
        self._retry_interval = retry_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching; call from inside the event loop that should be notified."""
        token = anyio.lowlevel.current_token()
        self._thread = threading.Thread(target=self._run, args=(token,), name="vend-token-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; never blocks."""
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, token: object) -> None:
        from watchfiles import watch  # lazily: its start-up cost only when a watch runs

        while not self._stop.is_set():
            if self.directory.is_dir():
                try:
                    for _changes in watch(
                        self.directory,
                        watch_filter=None,
                        recursive=False,
                        debounce=50,
                        step=WATCH_STEP_MS,
                        rust_timeout=0,
                        stop_event=self._stop,
                        raise_interrupt=False,
                    ):
                        try:
                            anyio.from_thread.run_sync(self._on_change, token=token)  # type: ignore[arg-type]
                        except RuntimeError:
                            return  # the event loop has ended
                except OSError:
                    pass  # the directory vanished or cannot be watched; look again below
            self._stop.wait(self._retry_interval)
