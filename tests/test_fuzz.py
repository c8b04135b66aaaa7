"""Property tests (hypothesis) for every function that judges outside input.

Answer validation and token decoding must raise nothing but :mod:`sidecar.errors`
types on arbitrary JSON and arbitrary bytes, and what they accept must satisfy the
contract. The schedule must keep its invariants for every lifetime >= 1 s and every
clock. Runs are derandomized with bounded example counts so CI is deterministic.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tenacity import Future, RetryCallState

from sidecar.contract import RETRY_AFTER_CAP, interpret, parse_error, parse_retry_after, parse_success
from sidecar.credentials import Grant
from sidecar.errors import InvalidAnswer, SidecarError, TokenError, TransientVendorError, VendorError
from sidecar.render import render
from sidecar.schedule import (
    JITTER_FRACTION,
    MIN_REFRESH_INTERVAL,
    REFRESH_POINT,
    EqualJitter,
    FailureWait,
    FullJitter,
    refresh_delay,
)
from sidecar.token import decode_token

fuzz = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

NOW = 1_790_000_000.0
_TOKENISH = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]+")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# Strings that are sometimes valid field values, sometimes almost.
field_text = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"[A-Za-z0-9/+=]{1,60}", fullmatch=True),
    st.sampled_from(["", " ", "a b", "x\ny", "x\x00y", "x\x85y", "\u2028"]),
)
times = st.floats(min_value=-4e9, max_value=2e10, allow_nan=False)
expirations = st.one_of(
    st.text(max_size=40),
    times.filter(lambda t: -6e10 < t < 2.5e11).map(
        lambda t: datetime.fromtimestamp(max(min(t, 2.5e11), -6e10), UTC).isoformat()
    ),
    st.from_regex(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,12})?([Zz]|[+-]\d{2}:\d{2})?", fullmatch=True),
)
answer_docs = st.fixed_dictionaries(
    {},
    optional={
        "access_key_id": st.one_of(field_text, json_values),
        "secret_access_key": st.one_of(field_text, json_values),
        "session_token": st.one_of(field_text, json_values),
        "expiration": st.one_of(expirations, json_values),
        "ttl_seconds": st.one_of(st.integers(), json_values),
        "decision_id": st.one_of(field_text, json_values),
        "lease_id": field_text,
        "backend": field_text,
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    answer_docs.map(lambda d: json.dumps(d).encode()),
)
header_text = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["120", "Wed, 21 Oct 2015 07:28:00 GMT", "²", "-1", "1e9"]))


def _check_grant(grant: Grant, now: float) -> None:
    creds = grant.credentials
    for value in (creds.access_key_id, creds.secret_access_key.get_secret_value(), creds.session_token.get_secret_value()):
        assert _TOKENISH.fullmatch(value)
    assert grant.lifetime > 0
    assert creds.expiration.tzinfo is not None
    files = render(creds)  # whatever was accepted renders into the six files
    assert json.loads(files["credentials.json"])["Version"] == 1


@fuzz
@given(body=bodies, now=times, date=header_text)
def test_parse_success_accepts_only_valid_answers(body: bytes, now: float, date: str | None) -> None:
    try:
        grant = parse_success(body, now=now, date_header=date)
    except InvalidAnswer as exc:
        assert "\n" not in str(exc)
        return
    _check_grant(grant, now)


@fuzz
@given(doc=answer_docs, now=times)
def test_parse_success_on_contract_shaped_documents(doc: dict[str, object], now: float) -> None:
    try:
        grant = parse_success(json.dumps(doc).encode(), now=now)
    except InvalidAnswer:
        return
    _check_grant(grant, now)
    assert grant.credentials.expiration.timestamp() > now - 1  # second precision


@fuzz
@given(
    status=st.integers(min_value=100, max_value=599),
    body=bodies,
    headers=st.dictionaries(
        st.sampled_from(["content-type", "retry-after", "date", "x-other"]), st.text(max_size=40), max_size=4
    ),
    now=times,
)
def test_interpret_raises_only_vendor_errors(status: int, body: bytes, headers: dict[str, str], now: float) -> None:
    try:
        grant = interpret(status, headers, body, now=now, request_id="req-1")
    except VendorError as exc:
        assert exc.request_id == "req-1"
        assert "\n" not in str(exc)
        if status == 200 or 300 <= status < 400 or status >= 500 or status in (429,):
            assert isinstance(exc, TransientVendorError)
        return
    assert status == 200
    _check_grant(grant, now)


@fuzz
@given(status=st.integers(min_value=0, max_value=999), body=bodies, retry_after=header_text, now=times)
def test_parse_error_always_returns_a_one_line_vendor_error(status: int, body: bytes, retry_after: str | None, now: float) -> None:
    headers = {} if retry_after is None else {"retry-after": retry_after}
    result = parse_error(status, body, headers, now=now)
    assert isinstance(result, VendorError)
    assert str(result).isprintable()
    if result.retry_after is not None:
        assert 0.0 <= result.retry_after <= RETRY_AFTER_CAP


@fuzz
@example(value="\u00b2", now=NOW)  # str.isdigit() is True, float() refuses it
@given(value=st.one_of(header_text, st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=5)), now=times)
def test_parse_retry_after_is_total_and_bounded(value: str | None, now: float) -> None:
    seconds = parse_retry_after(value, now)
    assert seconds is None or 0.0 <= seconds <= RETRY_AFTER_CAP


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


jwt_shaped = st.builds(
    lambda header, payload, sig: f"{_b64(header)}.{_b64(payload)}.{_b64(sig)}".encode(),
    st.one_of(st.binary(max_size=40), json_values.map(lambda v: json.dumps(v).encode()), st.just(b'{"alg":"HS256","typ":"JWT"}')),
    st.one_of(st.binary(max_size=60), json_values.map(lambda v: json.dumps(v).encode()), answer_docs.map(lambda d: json.dumps(d).encode())),
    st.binary(max_size=20),
)
claims = st.fixed_dictionaries(
    {},
    optional={
        "exp": st.one_of(st.integers(), st.floats(), json_values),
        "aud": st.one_of(st.text(max_size=20), st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=3), json_values),
        "iss": json_values,
        "sub": json_values,
        "tenant": json_values,
        "nbf": st.one_of(st.integers(), json_values),
        "iat": st.one_of(st.integers(), json_values),
    },
)


@fuzz
@given(raw=st.one_of(st.binary(max_size=200), jwt_shaped), now=times, audience=st.one_of(st.none(), st.just("vend.platform")))
def test_decode_token_raises_only_token_errors(raw: bytes, now: float, audience: str | None) -> None:
    try:
        token = decode_token(raw, now=now, audience=audience)
    except TokenError as exc:
        text = raw.strip().decode(errors="replace")
        assert len(text) < 8 or text not in str(exc)  # the token never shows in the message
        return
    assert token.expires_at is None or token.expires_at > now
    assert audience is None or audience in token.audience


@fuzz
@given(payload=claims, now=times, audience=st.one_of(st.none(), st.just("vend.platform")))
@example(payload={"exp": 10**400}, now=NOW, audience=None)  # float() overflows
@example(payload={"exp": float("nan")}, now=NOW, audience=None)
@example(payload={"exp": float("-inf")}, now=NOW, audience=None)
@example(payload={"exp": float("inf")}, now=NOW, audience=None)
@example(payload={"exp": "1790000000"}, now=NOW, audience=None)
def test_decode_token_on_signed_jwts_with_odd_claims(payload: dict[str, object], now: float, audience: str | None) -> None:
    # Built by hand: pyjwt's encoder refuses odd claim types, the decoder must cope.
    header = _b64(b'{"alg":"HS256","typ":"JWT"}')
    raw = f"{header}.{_b64(json.dumps(payload).encode())}.{_b64(b'k' * 32)}".encode()
    try:
        token = decode_token(raw, now=now, audience=audience)
    except TokenError:
        return
    assert token.expires_at is None or (math.isfinite(token.expires_at) and token.expires_at > now)
    assert raw.decode() not in repr(token) and raw.decode() not in str(token)


@fuzz
@given(lifetime=st.floats(min_value=1.0, max_value=1e8), now=times, seed=st.integers(min_value=0, max_value=2**32))
def test_refresh_delay_is_strictly_before_expiry_and_within_jitter(lifetime: float, now: float, seed: int) -> None:
    delay = refresh_delay(lifetime, random.Random(seed))
    assert 0.0 < delay < lifetime  # never in the past, strictly before expiry
    assert now < now + delay <= now + lifetime  # also on an absolute clock
    floor = min(MIN_REFRESH_INTERVAL, lifetime / 2)
    low = lifetime * (REFRESH_POINT - JITTER_FRACTION)
    high = lifetime * (REFRESH_POINT + JITTER_FRACTION)
    assert delay == floor or low <= delay <= high
    assert delay >= floor


def _state(attempt: int, error: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    future = Future(attempt)
    future.set_exception(error)
    state.outcome = future
    return state


errors = st.sampled_from(
    [
        TransientVendorError("t"),
        InvalidAnswer("i"),
        VendorError("v"),
        TokenError("tok"),
    ]
)


@fuzz
@given(attempt=st.integers(min_value=1, max_value=200), seed=st.integers(min_value=0, max_value=2**32))
def test_jitter_waits_stay_in_their_windows(attempt: int, seed: int) -> None:
    rng = random.Random(seed)
    state = _state(attempt, TransientVendorError("x"))
    full = FullJitter(rng)(state)
    assert 0.0 <= full <= min(60.0, 2.0 ** (attempt - 1))
    equal = EqualJitter(rng)(state)
    window = min(300.0, 5.0 * 2.0 ** (attempt - 1))
    assert window / 2 <= equal <= window


@fuzz
@given(
    attempt=st.integers(min_value=1, max_value=200),
    seed=st.integers(min_value=0, max_value=2**32),
    status=st.sampled_from([401, 403, 400, 429, 500, 503]),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=RETRY_AFTER_CAP)),
)
def test_failure_wait_picks_the_class_and_honours_retry_after(attempt: int, seed: int, status: int, retry_after: float | None) -> None:
    error = parse_error(status, b"", {}, now=NOW)
    error.retry_after = retry_after
    wait = FailureWait(random.Random(seed))(_state(attempt, error))
    slow = status in (400, 401, 403)
    cap = 300.0 if slow else 60.0
    assert 0.0 <= wait <= max(cap, retry_after or 0.0)
    if retry_after is not None:
        assert wait >= retry_after
    if slow:
        assert wait >= min(300.0, 5.0 * 2.0 ** (attempt - 1)) / 2


@fuzz
@given(error=errors, attempt=st.integers(min_value=1, max_value=50), seed=st.integers(min_value=0, max_value=1000))
def test_every_retried_error_gets_a_finite_bounded_wait(error: SidecarError, attempt: int, seed: int) -> None:
    wait = FailureWait(random.Random(seed))(_state(attempt, error))
    assert 0.0 <= wait <= 300.0
