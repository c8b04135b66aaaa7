"""The vendor fault matrix: every bad answer issue #3 names, and how to run one.

Each :class:`VendorFault` is served by the real loopback vending double (TLS ones by
a real TLS server with trustme certificates). :func:`run_vendor_fault` drives the
real refresh loop through: good answer (published) -> the fault -> good answer, and
checks at the fault's backoff that the last good set is still live and
byte-identical. ``tests/test_faults_vendor.py`` asserts on the result per fault;
``tests/test_no_secrets.py`` runs the whole matrix with the logs captured.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme

from conftest import TokenDir, make_jwt
from loop_driver import LoopDriver
from published import check_set, snapshot
from vendor_double import (
    Handler,
    VendorDouble,
    error,
    grant,
    hang,
    json_body,
    padded,
    raw,
    redirect,
    reset,
    rfc3339,
    trickle,
    truncated,
)

__all__ = ["TOKEN_FAULTS", "VENDOR_FAULTS", "FaultRun", "VendorFault", "fix_token", "run_vendor_fault"]


@dataclass(frozen=True)
class VendorFault:
    """One bad answer and what the sidecar must make of it.

    ``wait`` is the expected first backoff: ``"transient"`` (full jitter, at most 1 s),
    ``"slow"`` (equal jitter in [2.5, 5] s) or a number (``Retry-After`` honoured).
    """

    name: str
    answer: Callable[[str], Handler] | None  # given the URL of a second server
    cls: str
    says: str
    wait: str | float
    timeout: float = 5.0
    #: For TLS faults: the certificate the server switches to (see _bad_leaf).
    tls: str | None = None


def _wrong_types(elsewhere: str) -> Handler:
    return grant(access_key_id=12345, secret_access_key=["not", "a", "string"])


VENDOR_FAULTS: list[VendorFault] = [
    VendorFault("500", lambda _: error(500, "internal_error"), "transient", "vendor unavailable (500)", "transient"),
    VendorFault("502", lambda _: raw(502, b"<html>bad gateway</html>", "text/html"), "transient", "vendor unavailable (502)", "transient"),
    VendorFault("503", lambda _: error(503, "backend_unavailable"), "transient", "vendor unavailable (503)", "transient"),
    VendorFault("503-retry-after", lambda _: error(503, "backend_unavailable", retry_after="7"), "transient", "(503)", 7.0),
    VendorFault("429-retry-after", lambda _: error(429, "rate_limited", retry_after="12"), "transient", "(429)", 12.0),
    VendorFault("connection-reset", lambda _: reset(), "transient", "Connection reset by peer", "transient"),
    VendorFault("read-timeout", lambda _: hang(30), "transient", "vendor timed out waiting for the answer", "transient", timeout=0.5),
    VendorFault("trickling-answer", lambda _: trickle(0.1, 30), "transient", "longer than 1.5 s in total", "transient", timeout=0.5),
    VendorFault("non-json-200", lambda _: raw(200, b"this is not json"), "invalid_answer", "not JSON", "transient"),
    VendorFault("truncated-body", lambda _: truncated(), "transient", "while reading the answer", "transient"),
    VendorFault("json-array-200", lambda _: json_body(200, [{"access_key_id": "ASIA"}]), "invalid_answer", "not a JSON object", "transient"),
    VendorFault("empty-200", lambda _: raw(200, b""), "invalid_answer", "not JSON", "transient"),
    VendorFault("html-200", lambda _: raw(200, b"<html><body>login</body></html>", "text/html"), "invalid_answer", "'text/html'", "transient"),
    VendorFault("missing-session-token", lambda _: grant(session_token=None), "invalid_answer", "lacks required field 'session_token'", "transient"),
    VendorFault("missing-expiration", lambda _: grant(expiration=None), "invalid_answer", "lacks required field 'expiration'", "transient"),
    VendorFault("expiration-in-past", lambda _: grant(expiration=rfc3339(time.time() - 120)), "invalid_answer", "not in the future", "transient"),
    VendorFault("wrong-types", _wrong_types, "invalid_answer", "must be a string", "transient"),
    VendorFault("newline-in-value", lambda _: grant(session_token="FwoGZXnewline0123456789\nInjectedLine0123456789"), "invalid_answer", "'session_token' is empty or holds white space", "transient"),
    VendorFault("control-char-in-value", lambda _: grant(secret_access_key="ctrl0123456789abcdef\x07ctrl0123456789abcdef"), "invalid_answer", "'secret_access_key' is empty or holds white space", "transient"),
    VendorFault("1-MiB-body", lambda _: padded(1024 * 1024), "invalid_answer", "exceeds 64 KiB", "transient"),
    VendorFault("307-to-another-port", lambda elsewhere: redirect(elsewhere + "/v1/credentials"), "transient", "307 redirect", "transient"),
    VendorFault("401", lambda _: error(401, "invalid_token"), "auth", "rejected the token (401)", "slow"),
    VendorFault("403-ttl-out-of-bounds", lambda _: error(403, "denied", "ttl_out_of_bounds"), "denied", "refused the request (403)", "slow"),
    VendorFault("400", lambda _: error(400, "invalid_request"), "denied", "refused the request (400)", "slow"),
    VendorFault("400-no-body", lambda _: raw(400, b"", "text/plain"), "denied", "no error body", "slow"),
    VendorFault("tls-wrong-ca", None, "transient", "TLS with the vendor failed: unable to get local issuer", "transient", tls="wrong-ca"),
    VendorFault("tls-wrong-host", None, "transient", "TLS with the vendor failed: IP address mismatch", "transient", tls="wrong-host"),
    VendorFault("tls-expired-cert", None, "transient", "TLS with the vendor failed: certificate has expired", "transient", tls="expired"),
]


def _bad_leaf(kind: str, trusted: trustme.CA) -> trustme.LeafCert:
    """A server certificate the client must refuse: from an unknown CA, for another
    host, or expired (all otherwise valid)."""
    if kind == "wrong-ca":
        return trustme.CA().issue_cert("127.0.0.1")
    if kind == "wrong-host":
        return trusted.issue_cert("vend.elsewhere.test", "127.0.0.2")
    if kind == "expired":
        now = datetime.now(UTC)
        return trusted.issue_cert("127.0.0.1", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    raise ValueError(kind)


# -- token faults: (name, how to break the token file, what the error must say) ---------


def _remove(tokens: TokenDir) -> None:
    os.unlink(tokens.path)


def _directory(tokens: TokenDir) -> None:
    os.unlink(tokens.path)
    os.mkdir(tokens.path)


def fix_token(tokens: TokenDir) -> None:
    if tokens.path.is_dir() and not tokens.path.is_symlink():
        os.rmdir(tokens.path)
    tokens.write(make_jwt())


TOKEN_FAULTS: list[tuple[str, Callable[[TokenDir], None], str]] = [
    ("missing", _remove, "does not exist"),
    ("empty", lambda t: t.write(b""), "is empty"),
    ("white-space-only", lambda t: t.write(b"  \n\t "), "is empty"),
    ("not-a-jwt", lambda t: t.write("this-is-not-a-jwt"), "does not hold a JWT"),
    ("binary", lambda t: t.write(b"\xff\xfe\x00garbage"), "does not hold an ASCII JWT"),
    ("expired", lambda t: t.write(make_jwt(exp=int(time.time()) - 600)), "token expired"),
    ("directory-in-its-place", _directory, "is a directory"),
]



@dataclass
class FaultRun:
    """What one fault run observed."""

    driver: LoopDriver
    double: VendorDouble
    elsewhere: VendorDouble
    good: dict[str, bytes] = field(default_factory=dict)
    intact_at_backoff: list[bool] = field(default_factory=list)

    @property
    def published_keys(self) -> list[str]:
        return [g.credentials.access_key_id for g in self.driver.recorder.grants]

    def bad_values(self) -> list[str]:
        """Every value of every answer that was issued but never published."""
        published = set(self.published_keys)
        out: list[str] = []
        for doc in self.double.issued:
            if doc.get("access_key_id") not in published:
                out += [str(v) for k, v in doc.items() if k in ("access_key_id", "secret_access_key", "session_token")]
        return out


async def run_vendor_fault(fault: VendorFault, *, tmp: Path, token_file: Path, seed: int = 0) -> FaultRun:
    """good answer -> ``fault`` -> good answer, through the real loop; see the module doc."""
    out = tmp / f"out-{fault.name}"
    with ExitStack() as stack:
        elsewhere = stack.enter_context(VendorDouble())
        ca_file = None
        arm: Callable[[], None]
        disarm: Callable[[], None] = lambda: None
        if fault.tls:
            trusted = trustme.CA()
            bad_leaf = _bad_leaf(fault.tls, trusted)
            server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            good_leaf = trusted.issue_cert("127.0.0.1")
            good_leaf.configure_cert(server)
            ca_file = tmp / "trusted-ca.pem"
            trusted.cert_pem.write_to_path(str(ca_file))
            # Every answer closes its connection, so each request makes a fresh TLS
            # handshake and a certificate swap takes effect at once.
            double = stack.enter_context(VendorDouble(ssl_context=server, close_connections=True))
            arm = lambda: bad_leaf.configure_cert(server)  # noqa: E731
            disarm = lambda: good_leaf.configure_cert(server)  # noqa: E731
        else:
            double = stack.enter_context(VendorDouble())
            assert fault.answer is not None
            answer = fault.answer(elsewhere.url)
            arm = lambda: double.script(answer)  # noqa: E731

        driver = LoopDriver(
            token_file=token_file, out=out, vendor_url=double.url, ca_file=ca_file, timeout=fault.timeout, seed=seed
        )
        run = FaultRun(driver=driver, double=double, elsewhere=elsewhere)

        def on_refresh_wait(published: int) -> None:
            run.good = snapshot(out)
            arm()

        def on_backoff(failures: int) -> None:
            check_set(out)
            run.intact_at_backoff.append(snapshot(out) == run.good)
            disarm()

        driver.on_refresh_wait = on_refresh_wait
        driver.on_backoff = on_backoff
        await driver.run(publishes=2)
    return run
