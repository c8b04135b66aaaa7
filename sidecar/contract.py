"""Credential vending API v1, the pure half: request shape and answer validation.

Everything here takes plain values and returns plain values or raises a
:mod:`sidecar.errors` class; nothing sleeps, reads a clock or does IO. The HTTP
half lives in :mod:`sidecar.vendor`. The contract is pinned in
``shared/contract/vending-api-v1.md``; the rules below quote it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from pydantic import SecretStr

from .credentials import Credentials, Grant
from .errors import AuthRejected, ConfigError, Denied, InvalidAnswer, TransientVendorError, VendorError

__all__ = [
    "ACTIONS",
    "CLOCK_SKEW_LIMIT",
    "MAX_BODY_BYTES",
    "PATH",
    "interpret",
    "parse_error",
    "parse_retry_after",
    "parse_success",
    "request_body",
    "check_vendor_url",
]

PATH = "/v1/credentials"
ACTIONS = ("read", "write", "list")
MAX_BODY_BYTES = 64 * 1024
CLOCK_SKEW_LIMIT = 30.0
#: A Retry-After beyond this is clamped: a buggy header must not park the sidecar.
RETRY_AFTER_CAP = 600.0

_REQUIRED = ("access_key_id", "secret_access_key", "session_token")
# Non-empty, no white space, no control characters (C0, DEL, C1).
_TOKENISH = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]+")
# RFC 3339 date-time with an explicit offset (Z or +hh:mm); fractional seconds allowed.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)


def check_vendor_url(url: str) -> str:
    """Apply the transport rule: https, or http to a loopback host only.

    Returns the URL without a trailing slash; raises :class:`ConfigError`.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"vendor URL must be an absolute https:// URL, got {url!r}")
    if parts.username or parts.password:
        raise ConfigError("vendor URL must not carry user:password; the bearer token is the credential")
    if parts.query or parts.fragment:
        raise ConfigError("vendor URL must not carry a query or fragment; give the service's base URL")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigError(
            f"vendor URL {url!r} uses plain http to a non-loopback host; use https:// "
            "(http is allowed only for 127.0.0.0/8, ::1 and localhost)"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request_body(
    *, bucket: str, prefix: str, actions: Iterable[str], ttl_seconds: int
) -> dict[str, object]:
    """The JSON body of ``POST /v1/credentials``; actions de-duplicated, in contract order."""
    wanted = set(actions)
    unknown = wanted - set(ACTIONS)
    if unknown or not wanted:
        raise ConfigError(f"actions must be a non-empty subset of {', '.join(ACTIONS)}")
    return {
        "protected_system": "object-storage",
        "bucket": bucket,
        "prefix": prefix,
        "actions": [a for a in ACTIONS if a in wanted],
        "ttl_seconds": ttl_seconds,
    }


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone admits '²', which float() rejects
        seconds = float(value)
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def _parse_date_header(value: str | None) -> float | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _parse_expiration(value: object) -> datetime:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise InvalidAnswer("answer field 'expiration' is not an RFC 3339 time with an explicit offset")
    text = value.upper().replace("Z", "+00:00")
    # Python's fromisoformat accepts at most 6 fractional digits.
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidAnswer("answer field 'expiration' is not a valid date-time") from exc
    return moment.astimezone(UTC).replace(microsecond=0)


def _optional_str(doc: Mapping[str, object], name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _TOKENISH.fullmatch(value):
        raise InvalidAnswer(f"answer field {name!r} must be a string without white space")
    return value


def parse_success(body: bytes, *, now: float, date_header: str | None = None) -> Grant:
    """Validate a 200 body into a :class:`Grant`, or raise :class:`InvalidAnswer`.

    Error messages name the offending field, never its value: the value may be a
    secret.
    """
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidAnswer("answer body is not JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidAnswer("answer body is not a JSON object")
    values: dict[str, str] = {}
    for name in _REQUIRED:
        if name not in doc:
            raise InvalidAnswer(f"answer lacks required field {name!r}")
        value = doc[name]
        if not isinstance(value, str):
            raise InvalidAnswer(f"answer field {name!r} must be a string")
        if not _TOKENISH.fullmatch(value):
            raise InvalidAnswer(f"answer field {name!r} is empty or holds white space or control characters")
        values[name] = value
    if "expiration" not in doc:
        raise InvalidAnswer("answer lacks required field 'expiration'")
    expiration = _parse_expiration(doc["expiration"])

    ttl = doc.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise InvalidAnswer("answer field 'ttl_seconds' must be a positive integer")

    server_now = _parse_date_header(date_header)
    skew = None if server_now is None else server_now - now
    if skew is not None and abs(skew) > CLOCK_SKEW_LIMIT:
        # The clocks disagree: judge expiry by the server's clock, schedule by the
        # granted lifetime (contract v1, "Success").
        remaining = expiration.timestamp() - server_now
        lifetime = float(ttl) if ttl is not None else remaining
        lifetime = min(lifetime, remaining)
    else:
        remaining = expiration.timestamp() - now
        lifetime = remaining
    if remaining <= 0:
        raise InvalidAnswer("answer field 'expiration' is not in the future")

    credentials = Credentials(
        access_key_id=values["access_key_id"],
        secret_access_key=SecretStr(values["secret_access_key"]),
        session_token=SecretStr(values["session_token"]),
        expiration=expiration,
    )
    return Grant(
        credentials=credentials,
        lifetime=lifetime,
        ttl_seconds=ttl,
        decision_id=_optional_str(doc, "decision_id"),
        lease_id=_optional_str(doc, "lease_id"),
        backend=_optional_str(doc, "backend"),
        clock_skew=skew,
    )


def _error_doc(body: bytes) -> dict[str, str | None]:
    """The best-effort error body: only short, printable, non-secret string fields."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    if not isinstance(doc, dict):
        return {}
    out: dict[str, str | None] = {}
    for key in ("error", "reason", "message", "decision_id"):
        value = doc.get(key)
        if isinstance(value, str):
            out[key] = "".join(ch if ch.isprintable() else "?" for ch in value)[:200]
    return out


def parse_error(
    status: int, body: bytes, headers: Mapping[str, str], *, now: float, request_id: str | None = None
) -> VendorError:
    """Map a non-200 answer to the contract's error class (returned, not raised)."""
    doc = _error_doc(body)
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    common = dict(
        request_id=request_id,
        status=status,
        error=doc.get("error"),
        reason=doc.get("reason"),
        decision_id=doc.get("decision_id"),
        retry_after=retry_after,
    )
    what = doc.get("message") or doc.get("error") or "no error body"
    if 300 <= status < 400:
        return TransientVendorError(
            f"vendor answered {status} redirect; redirects are never followed", **common
        )
    if status == 401:
        return AuthRejected(f"vendor rejected the token (401): {what}", **common)
    if status in (429, 503) or status >= 500:
        return TransientVendorError(f"vendor unavailable ({status}): {what}", **common)
    if 400 <= status < 500:
        return Denied(f"vendor refused the request ({status}): {what}", **common)
    return TransientVendorError(f"vendor answered unexpected status {status}", **common)


def interpret(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    request_id: str | None = None,
) -> Grant:
    """Turn one complete answer into a :class:`Grant` or raise its error class."""
    if status == 200:
        media_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise InvalidAnswer(
                f"vendor answered 200 with Content-Type {media_type!r}, not application/json",
                request_id=request_id,
                status=status,
            )
        try:
            return parse_success(body, now=now, date_header=headers.get("date"))
        except InvalidAnswer as exc:
            exc.request_id = request_id
            exc.status = status
            raise
    if 200 < status < 300:
        raise InvalidAnswer(f"vendor answered {status}; contract v1 success is 200", request_id=request_id, status=status)
    raise parse_error(status, body, headers, now=now, request_id=request_id)
