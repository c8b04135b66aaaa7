"""Token reading and (unverified) decoding; the directory watch sees kubelet's swap."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from conftest import TokenDir, make_jwt
from sidecar.errors import TokenError
from sidecar.token import MAX_TOKEN_BYTES, decode_token, read_token, watch_token

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
    stop = anyio.Event()
    seen = anyio.Event()

    async def watch() -> None:
        async for _ in watch_token(token_dir.path, stop):
            seen.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            # The watch is armed once its worker thread runs; rotate until it reports.
            while not seen.is_set():
                token_dir.write(make_jwt(sub=f"rotated-{time.time_ns()}"))
                with anyio.move_on_after(0.5):
                    await seen.wait()
            stop.set()


@pytest.mark.anyio
async def test_watch_waits_for_a_missing_directory_and_stops(tmp_path: Path) -> None:
    stop = anyio.Event()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for _ in watch_token(tmp_path / "absent" / "token", stop, retry_interval=0.05):
                    pass

            tg.start_soon(watch)
            await anyio.sleep(0.2)
            stop.set()
