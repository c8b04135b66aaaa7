"""Contract v1, pure half: request body, transport rule, answer validation, error classes."""

from __future__ import annotations

import json
import time
from email.utils import format_datetime
from datetime import UTC, datetime

import pytest

from sidecar.contract import check_vendor_url, interpret, parse_retry_after, parse_success, request_body
from sidecar.errors import AuthRejected, ConfigError, Denied, InvalidAnswer, TransientVendorError

NOW = 1_796_000_000.0  # 2026-11-30T..Z; a fixed clock


def good(**overrides: object) -> bytes:
    doc: dict[str, object] = {
        "access_key_id": "ASIAEXAMPLE",
        "secret_access_key": "s3cr3t-value",
        "session_token": "t0ken-value",
        "expiration": datetime.fromtimestamp(NOW + 1800, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ttl_seconds": 1800,
        "decision_id": "dec-1",
        "lease_id": "lease-1",
        "backend": "minio",
    }
    for key, value in overrides.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def http_date(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


class TestVendorUrl:
    @pytest.mark.parametrize(
        "url",
        ["https://vend.platform.svc", "https://vend.example:8443/base/", "http://127.0.0.1:8080", "http://[::1]:9", "http://localhost:1", "http://127.9.9.9"],
    )
    def test_accepted(self, url: str) -> None:
        assert check_vendor_url(url) == url.rstrip("/")

    @pytest.mark.parametrize(
        "url, fragment",
        [
            ("http://vend.platform.svc", "non-loopback"),
            ("http://10.0.0.1", "non-loopback"),
            ("http://localhost.evil.com", "non-loopback"),
            ("ftp://vend", "absolute https"),
            ("vend.platform.svc", "absolute https"),
            ("https://user:pw@vend", "user:password"),
            ("https://vend/?x=1", "query"),
        ],
    )
    def test_rejected(self, url: str, fragment: str) -> None:
        with pytest.raises(ConfigError, match=fragment):
            check_vendor_url(url)


def test_request_body_orders_and_dedupes_actions() -> None:
    body = request_body(bucket="artifacts", prefix="tenant-a/", actions=["list", "read", "list"], ttl_seconds=900)
    assert body == {
        "protected_system": "object-storage",
        "bucket": "artifacts",
        "prefix": "tenant-a/",
        "actions": ["read", "list"],
        "ttl_seconds": 900,
    }


@pytest.mark.parametrize("actions", [[], ["delete"], ["read", "admin"]])
def test_request_body_rejects_bad_actions(actions: list[str]) -> None:
    with pytest.raises(ConfigError):
        request_body(bucket="b", prefix="", actions=actions, ttl_seconds=1)


class TestSuccess:
    def test_valid_answer(self) -> None:
        grant = parse_success(good(), now=NOW)
        assert grant.credentials.access_key_id == "ASIAEXAMPLE"
        assert grant.credentials.secret_access_key.get_secret_value() == "s3cr3t-value"
        assert grant.lifetime == pytest.approx(1800)
        assert (grant.decision_id, grant.lease_id, grant.backend, grant.ttl_seconds) == ("dec-1", "lease-1", "minio", 1800)

    def test_repr_hides_secrets(self) -> None:
        grant = parse_success(good(), now=NOW)
        for text in (repr(grant), str(grant), repr(grant.credentials), str(grant.credentials)):
            assert "s3cr3t-value" not in text and "t0ken-value" not in text
        assert "ASIAEXAMPLE" in repr(grant.credentials)

    @pytest.mark.parametrize(
        "expiration, expected",
        [
            ("2026-12-03T13:00:00Z", "2026-12-03T13:00:00Z"),
            ("2026-12-03T14:00:00+01:00", "2026-12-03T13:00:00Z"),
            ("2026-12-03T12:30:00.123456789-00:30", "2026-12-03T13:00:00Z"),
            ("2026-12-03t13:00:00z", "2026-12-03T13:00:00Z"),
        ],
    )
    def test_expiration_normalised_to_utc(self, expiration: str, expected: str) -> None:
        now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()
        grant = parse_success(good(expiration=expiration), now=now)
        assert grant.credentials.expiration_text == expected

    @pytest.mark.parametrize(
        "body, message",
        [
            (b"not json", "not JSON"),
            (b"[1, 2]", "not a JSON object"),
            (b"", "not JSON"),
            (good(session_token=...), "'session_token'"),
            (good(expiration=...), "'expiration'"),
            (good(access_key_id=42), "must be a string"),
            (good(secret_access_key=""), "empty"),
            (good(session_token="abc\ndef"), "white space or control"),
            (good(session_token="abc\x07def"), "white space or control"),
            (good(access_key_id="AS IA"), "white space"),
            (good(expiration="2026-12-03 13:00:00"), "RFC 3339"),
            (good(expiration="2026-12-03T13:00:00"), "explicit offset"),
            (good(expiration=1796000000), "RFC 3339"),
            (good(expiration="2026-02-30T13:00:00Z"), "valid date-time"),
            (good(ttl_seconds="1800"), "ttl_seconds"),
            (good(ttl_seconds=True), "ttl_seconds"),
            (good(ttl_seconds=0), "ttl_seconds"),
            (good(decision_id=7), "decision_id"),
        ],
    )
    def test_invalid_answers(self, body: bytes, message: str) -> None:
        with pytest.raises(InvalidAnswer, match=message) as info:
            parse_success(body, now=NOW)
        assert "s3cr3t-value" not in str(info.value) and "t0ken-value" not in str(info.value)

    def test_expiration_in_the_past(self) -> None:
        with pytest.raises(InvalidAnswer, match="not in the future"):
            parse_success(good(), now=NOW + 1800)

    def test_unknown_fields_and_missing_optionals_are_fine(self) -> None:
        grant = parse_success(good(extra={"x": 1}, decision_id=..., lease_id=None, backend=...), now=NOW)
        assert grant.decision_id is None and grant.lease_id is None

    def test_small_skew_uses_wall_clock(self) -> None:
        grant = parse_success(good(), now=NOW, date_header=http_date(NOW + 20))
        assert grant.lifetime == pytest.approx(1800)
        assert grant.clock_skew == pytest.approx(20)

    def test_large_skew_schedules_from_granted_lifetime(self) -> None:
        # Local clock 2 h behind the vendor: wall-clock remaining would be 2.5 h.
        skewed_now = NOW - 7200
        grant = parse_success(good(), now=skewed_now, date_header=http_date(NOW))
        assert grant.lifetime == pytest.approx(1800)

    def test_large_skew_local_clock_ahead_is_not_expired(self) -> None:
        grant = parse_success(good(), now=NOW + 3600, date_header=http_date(NOW))
        assert grant.lifetime == pytest.approx(1800)

    def test_large_skew_without_ttl_uses_server_remaining(self) -> None:
        grant = parse_success(good(ttl_seconds=...), now=NOW + 3600, date_header=http_date(NOW + 600))
        assert grant.lifetime == pytest.approx(1200)


class TestErrors:
    @pytest.mark.parametrize(
        "status, code, cls",
        [
            (400, "invalid_request", Denied),
            (401, "invalid_token", AuthRejected),
            (403, "denied", Denied),
            (404, None, Denied),
            (429, "rate_limited", TransientVendorError),
            (503, "backend_unavailable", TransientVendorError),
            (500, None, TransientVendorError),
            (502, None, TransientVendorError),
            (307, None, TransientVendorError),
            (302, None, TransientVendorError),
        ],
    )
    def test_classes(self, status: int, code: str | None, cls: type) -> None:
        body = json.dumps({"error": code, "reason": "ttl_out_of_bounds", "message": "m", "decision_id": "dec-9"}).encode()
        with pytest.raises(cls) as info:
            interpret(status, {}, body, now=NOW, request_id="rid-1")
        assert type(info.value) is cls
        assert info.value.status == status and info.value.request_id == "rid-1"
        assert info.value.error == code and info.value.decision_id == "dec-9"

    def test_denied_carries_reason(self) -> None:
        body = json.dumps({"error": "denied", "reason": "prefix_not_allowed", "message": "no", "decision_id": "d"}).encode()
        err = pytest.raises(Denied, interpret, 403, {}, body, now=NOW).value
        assert err.reason == "prefix_not_allowed" and err.kind == "denied"

    @pytest.mark.parametrize("body", [b"", b"<html>oops</html>", b"[]", b'{"error": 5}', b"\xff\xfe"])
    def test_error_body_is_best_effort(self, body: bytes) -> None:
        err = pytest.raises(TransientVendorError, interpret, 503, {}, body, now=NOW).value
        assert err.error is None

    def test_retry_after_seconds_and_date(self) -> None:
        err = pytest.raises(TransientVendorError, interpret, 429, {"retry-after": "7"}, b"{}", now=NOW).value
        assert err.retry_after == 7
        err = pytest.raises(TransientVendorError, interpret, 503, {"retry-after": http_date(NOW + 30)}, b"", now=NOW).value
        assert err.retry_after == pytest.approx(30)

    def test_retry_after_parsing(self) -> None:
        assert parse_retry_after(None, NOW) is None
        assert parse_retry_after("garbage", NOW) is None
        assert parse_retry_after("999999", NOW) == 600  # capped
        assert parse_retry_after(http_date(NOW - 100), NOW) == 0

    def test_non_200_success_and_wrong_content_type(self) -> None:
        with pytest.raises(InvalidAnswer, match="204"):
            interpret(204, {}, b"", now=NOW)
        with pytest.raises(InvalidAnswer, match="text/html"):
            interpret(200, {"content-type": "text/html; charset=utf-8"}, good(), now=NOW)
        grant = interpret(200, {"content-type": "application/json; charset=utf-8"}, good(), now=NOW)
        assert grant.credentials.access_key_id == "ASIAEXAMPLE"


def test_clock_is_not_read() -> None:
    """Validation depends only on the ``now`` it is given, not on the wall clock."""
    far_future = time.time() + 10 * 365 * 86400
    with pytest.raises(InvalidAnswer, match="not in the future"):
        parse_success(good(), now=far_future)
