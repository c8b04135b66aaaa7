"""Token reading and (unverified) decoding; the directory watch sees kubelet's swap."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from conftest import TokenDir, make_jwt
from sidecar.errors import TokenError
from sidecar.token import MAX_TOKEN_BYTES, TokenWatch, decode_token, read_token

NOW = time.time()


def test_decodes_audit_claims_and_strips_white_space() -> None:
    raw = make_jwt(sub="sa:tenant-a:app", tenant="tenant-a", iss="https://key-cape.test", aud="vend")
    token = decode_token(f"\n  {raw} \n".encode(), now=NOW, audience="vend")
    assert token.value.get_secret_value() == raw
    assert (token.issuer, token.subject, token.tenant, token.audience) == ("https://key-cape.test", "sa:tenant-a:app", "tenant-a", ("vend",))
    assert raw not in repr(token) and raw not in str(token)


def test_projected_sa_token_without_tenant() -> None:
    token = decode_token(make_jwt(tenant=None).encode(), now=NOW)
    assert token.tenant is None and token.subject


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"not-a-jwt", "does not hold a JWT"),
        (b"a.b.c", "JWT"),
        (b"\xff\xfe", "ASCII"),
        (b"abc def", "white space"),
    ],
)
def test_bad_tokens_get_a_clear_message(raw: bytes, message: str) -> None:
    with pytest.raises(TokenError, match=message) as info:
        decode_token(raw, now=NOW)
    text = raw.decode(errors="ignore").strip()
    if len(text) > 3:
        assert text not in str(info.value)


def test_expired_token() -> None:
    raw = make_jwt(exp=int(NOW) - 120)
    with pytest.raises(TokenError, match="expired 120 s ago") as info:
        decode_token(raw.encode(), now=NOW)
    assert raw not in str(info.value)


def test_audience_mismatch_says_how_to_fix() -> None:
    with pytest.raises(TokenError, match="audience: vend.platform") as info:
        decode_token(make_jwt(aud=["https://kubernetes.default.svc"]).encode(), now=NOW, audience="vend.platform")
    assert "https://kubernetes.default.svc" in str(info.value)


def test_read_missing_directory_and_oversized(tmp_path: Path) -> None:
    with pytest.raises(TokenError, match="does not exist"):
        read_token(tmp_path / "nope", now=NOW)
    with pytest.raises(TokenError, match="is a directory"):
        read_token(tmp_path, now=NOW)
    big = tmp_path / "big"
    big.write_bytes(b"a" * (MAX_TOKEN_BYTES + 1))
    with pytest.raises(TokenError, match="larger than"):
        read_token(big, now=NOW)


def test_read_follows_kubelet_rotation(token_dir: TokenDir) -> None:
    first = read_token(token_dir.path, now=NOW)
    token_dir.write(make_jwt(sub="second"))
    second = read_token(token_dir.path, now=NOW)
    assert second.subject == "second" and second.fingerprint != first.fingerprint


@pytest.mark.anyio
async def test_watch_sees_a_kubelet_style_swap(token_dir: TokenDir) -> None:
    seen = anyio.Event()
    watch = TokenWatch(token_dir.path, seen.set)
    watch.start()
    try:
        with anyio.fail_after(20):
            # The watch is armed once its thread runs; rotate until it reports.
            while not seen.is_set():
                token_dir.write(make_jwt(sub=f"rotated-{time.time_ns()}"))
                with anyio.move_on_after(0.5):
                    await seen.wait()
    finally:
        watch.stop()
    assert watch.directory == token_dir.root


@pytest.mark.anyio
async def test_watch_waits_for_a_missing_directory_then_sees_it(tmp_path: Path) -> None:
    seen = anyio.Event()
    watch = TokenWatch(tmp_path / "later" / "vend-token", seen.set, retry_interval=0.05)
    watch.start()
    try:
        with anyio.fail_after(20):
            tokens = TokenDir(tmp_path / "later")
            while not seen.is_set():
                tokens.write(make_jwt(sub=f"late-{time.time_ns()}"))
                with anyio.move_on_after(0.5):
                    await seen.wait()
    finally:
        watch.stop()


@pytest.mark.anyio
async def test_stop_never_blocks_and_the_thread_ends_by_itself(token_dir: TokenDir) -> None:
    watch = TokenWatch(token_dir.path, lambda: None)
    watch.start()
    assert watch.running
    watch.stop()  # returns at once; the daemon thread notices within a step
    with anyio.fail_after(20):
        while watch.running:
            await anyio.sleep(0.05)
