"""The local identity issuer: JWKS over real HTTP verifies what it mints; the token
file rotates kubelet-style at 80 % of the token's life."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import httpx
import jwt
import pytest

from sidecar.dev.issuer import ROTATE_AT, LocalIssuer, TokenFile, jwk_thumbprint
from sidecar.token import read_token


@pytest.mark.anyio
async def test_discovery_and_jwks_over_http_verify_a_minted_token() -> None:
    async with LocalIssuer() as issuer:
        token = issuer.mint(audience="vend.test", subject="system:serviceaccount:t:app", tenant="tenant-a", lifetime=600)
        async with httpx.AsyncClient(trust_env=False) as http:
            discovery = (await http.get(f"{issuer.url}/.well-known/openid-configuration")).json()
            assert discovery["issuer"] == issuer.url
            keys = jwt.PyJWKSet.from_dict((await http.get(discovery["jwks_uri"])).json())
    assert issuer.url.startswith("http://127.0.0.1:")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == issuer.kid == jwk_thumbprint(issuer.jwk)
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="vend.test", issuer=issuer.url)
    assert {"iss", "sub", "aud", "tenant", "principal_type", "assurance", "exp", "iat", "jti"} <= set(claims)
    assert claims["tenant"] == "tenant-a" and claims["exp"] - claims["iat"] == 600
    # The JWKS holds only the public half.
    assert "d" not in keys.keys[0]._jwk_data


@pytest.mark.anyio
async def test_another_issuers_key_does_not_verify() -> None:
    async with LocalIssuer() as issuer, LocalIssuer() as other:
        forged = other.mint(audience="a", subject="s", tenant="t", lifetime=60)
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(forged, jwt.PyJWK(issuer.jwk), algorithms=["ES256"], audience="a")
    assert issuer.kid != other.kid


def test_thumbprint_is_rfc7638() -> None:
    # RFC 7638 section 3.1 uses an RSA key; this is the same construction for EC:
    # SHA-256 over {"crv","kty","x","y"} in lexical order, without white space.
    jwk = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    import base64
    import hashlib

    expected = base64.urlsafe_b64encode(
        hashlib.sha256(b'{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}').digest()
    ).rstrip(b"=").decode()
    assert jwk_thumbprint({**jwk, "kid": "ignored", "use": "sig"}) == expected


@pytest.mark.anyio
async def test_token_file_rotates_at_80_percent_with_a_data_swap(tmp_path: Path) -> None:
    issuer = LocalIssuer()
    minted: list[str] = []

    def mint() -> str:
        minted.append(issuer.mint(audience="a", subject="s", tenant="t", lifetime=100))
        return minted[-1]

    sleeps: list[float] = []
    seen: list[str] = []
    done = anyio.Event()
    token_file = TokenFile(tmp_path / "tokens", mint, lifetime=100)

    async def fake_sleep(seconds: float) -> None:
        # Each sleep is the point where kubelet would wait; record what is live now.
        sleeps.append(seconds)
        seen.append(read_token(token_file.path, now=time.time()).value.get_secret_value())
        if len(sleeps) == 3:
            done.set()
            await anyio.sleep_forever()

    token_file._sleep = fake_sleep
    async with anyio.create_task_group() as tg:
        await tg.start(token_file.run)
        assert token_file.path.read_text() == minted[0]  # written before start() returns
        await done.wait()
        tg.cancel_scope.cancel()

    assert sleeps == [100 * ROTATE_AT] * 3
    assert seen == minted[:3] and len(set(minted)) == 3  # a new token after each wait
    data = tmp_path / "tokens" / "..data"
    assert data.is_symlink() and os.readlink(tmp_path / "tokens" / "token") == "..data/token"
    generations = [p for p in (tmp_path / "tokens").iterdir() if p.name.startswith("..2")]
    assert len(generations) == 1  # the old generations are gone after each swap
