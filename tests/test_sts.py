"""Direct STS exchange (``--exchange sts``, sandbox only).

Against moto's STS over real HTTP with IAM enforcement *off*: with enforcement on,
moto answers an unsigned ``AssumeRoleWithWebIdentity`` with HTTP 500 (facts.md), and
moto never validates the web identity token, so the refusals are played by a real
HTTP server on loopback answering STS's XML errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from sidecar.consumer import read_credentials
from sidecar.errors import AuthRejected, ConfigError, Denied, InvalidAnswer, TransientVendorError
from sidecar.publish import Publisher
from sidecar.settings import RunSettings, load
from sidecar.sts import StsExchanger, s3_policy
from sidecar.token import decode_token

from conftest import make_jwt
from sandbox_parts import MotoProcess
from vendor_double import VendorDouble, raw

ROLE = "arn:aws:iam::123456789012:role/sandbox-tenant-a"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoProcess]:
    server = MotoProcess(tmp_path_factory.mktemp("moto") / "moto.log").start()  # enforcement stays off
    yield server
    server.stop()


def token():  # type: ignore[no-untyped-def]
    return decode_token(make_jwt().encode(), now=time.time())


def exchanger(endpoint: str, **kwargs: object) -> StsExchanger:
    settings: dict[str, object] = dict(sts_endpoint=endpoint, role_arn=ROLE, ttl_seconds=1000, timeout=3.0)
    settings.update(kwargs)
    return StsExchanger(**settings)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_moto_sts_grants_with_the_requested_duration(moto: MotoProcess) -> None:
    sts = exchanger(moto.endpoint, bucket="artifacts", prefix="tenant-a/", actions=("read", "write"))
    try:
        grant = await sts.vend(token(), "req-1")
    finally:
        await sts.aclose()
    assert grant.credentials.access_key_id.startswith("ASIA")
    assert 990 <= grant.lifetime <= 1000  # DurationSeconds = --ttl
    assert grant.backend == "sts" and grant.ttl_seconds == 1000 and grant.lease_id


@pytest.mark.anyio
async def test_request_is_unsigned_and_carries_duration_and_session_policy() -> None:
    answer = (
        b'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        b"<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAEXAMPLE000000001</AccessKeyId>"
        b"<SecretAccessKey>secret-value-0123456789</SecretAccessKey><SessionToken>session-token-value</SessionToken>"
        b"<Expiration>" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1000)).encode() + b"</Expiration>"
        b"</Credentials><AssumedRoleUser><AssumedRoleId>AROA:app</AssumedRoleId><Arn>arn:x</Arn></AssumedRoleUser>"
        b"</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata>"
        b"</AssumeRoleWithWebIdentityResponse>"
    )
    with VendorDouble() as double:
        double.script(raw(200, answer, "text/xml"))
        sts = exchanger(double.url, bucket="artifacts", prefix="tenant-a/", actions=("read",))
        the_token = token()
        try:
            grant = await sts.vend(the_token, "req-2")
        finally:
            await sts.aclose()
    assert grant.credentials.access_key_id == "ASIAEXAMPLE000000001" and grant.decision_id == "rid-1"
    sent = double.requests[-1]
    assert "Authorization" not in sent.headers  # the web identity token is the credential
    form = {k: v[0] for k, v in parse_qs(sent.body.decode()).items()}
    assert form["Action"] == "AssumeRoleWithWebIdentity" and form["DurationSeconds"] == "1000"
    assert form["RoleArn"] == ROLE and form["WebIdentityToken"] == the_token.value.get_secret_value()
    import json

    assert json.loads(form["Policy"]) == s3_policy("artifacts", "tenant-a/", ["read"])


def sts_error(status: int, code: str) -> object:
    body = (
        f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>{code} happened</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    ).encode()
    return raw(status, body, "text/xml")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "expected", "code"),
    [
        (sts_error(403, "AccessDenied"), Denied, "AccessDenied"),
        (sts_error(400, "InvalidParameterValue"), Denied, "InvalidParameterValue"),
        (sts_error(400, "ExpiredToken"), AuthRejected, "ExpiredToken"),
        (sts_error(400, "InvalidIdentityToken"), AuthRejected, "InvalidIdentityToken"),
        (sts_error(400, "IDPRejectedClaim"), AuthRejected, "IDPRejectedClaim"),
        (sts_error(400, "Throttling"), TransientVendorError, "Throttling"),
        (sts_error(503, "STSNotInitialized"), TransientVendorError, "STSNotInitialized"),
        (raw(500, b"<html>oops</html>", "text/html"), TransientVendorError, None),
        (raw(200, b"<not-xml", "text/xml"), TransientVendorError, None),
    ],
)
async def test_sts_answers_map_to_the_loops_error_classes(answer, expected, code) -> None:  # type: ignore[no-untyped-def]
    the_token = token()
    with VendorDouble() as double:
        double.script(answer)
        sts = exchanger(double.url)
        try:
            with pytest.raises(expected) as caught:
                await sts.vend(the_token, "req-3")
        finally:
            await sts.aclose()
    assert type(caught.value) is expected or expected is TransientVendorError
    assert caught.value.request_id == "req-3"
    if code is not None:
        assert caught.value.error == code
    assert the_token.value.get_secret_value() not in str(caught.value)


@pytest.mark.anyio
async def test_unreachable_sts_is_transient() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sts = exchanger(dead)
    try:
        with pytest.raises(TransientVendorError) as caught:
            await sts.vend(token(), "req-4")
    finally:
        await sts.aclose()
    assert not isinstance(caught.value, InvalidAnswer)


def test_cli_once_with_sts_publishes_a_set(tmp_path: Path, moto: MotoProcess) -> None:
    tokens = Publisher(tmp_path / "tokens", file_mode=0o644)
    tokens.prepare()
    tokens.publish({"token": make_jwt().encode()})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_SIDECAR_", "AWS_"))}
    done = subprocess.run(
        [
            sys.executable, "-m", "sidecar", "run", "--once",
            "--exchange", "sts", "--sts-endpoint", moto.endpoint, "--role-arn", ROLE, "--ttl", "900",
            "--out", str(tmp_path / "out"), "--token-file", str(tmp_path / "tokens" / "token"),
        ],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "exchange.sts" in done.stderr and "sandboxes only" in done.stderr
    published = read_credentials(tmp_path / "out")
    assert 880 <= published.expiration.timestamp() - time.time() <= 900


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--exchange", "sts", "--role-arn", ROLE], "--exchange sts needs --sts-endpoint"),
        (["--exchange", "sts", "--sts-endpoint", "http://127.0.0.1:9"], "--exchange sts needs --role-arn"),
        (["--sts-endpoint", "http://127.0.0.1:9"], "applies only with --exchange sts"),
        (["--vendor-url", "https://v.example", "--bucket", "b-1", "--role-arn", ROLE], "applies only with --exchange sts"),
        (["--exchange", "sts", "--sts-endpoint", "http://10.0.0.1:9000", "--role-arn", ROLE, "--ttl", "900"], "plain http to a non-loopback"),
        (["--exchange", "sts", "--sts-endpoint", "https://sts.example", "--role-arn", "role/x", "--ttl", "900"], "must be a role ARN"),
        (["--exchange", "sts", "--sts-endpoint", "https://sts.example", "--role-arn", ROLE, "--ttl", "300"], "900..43200"),
        (["--exchange", "sts", "--sts-endpoint", "https://sts.example", "--role-arn", ROLE, "--ttl", "900", "--vendor-url", "https://v.example"], "does not apply with --exchange sts"),
        (["--exchange", "magic"], "--exchange"),
    ],
)
def test_sts_settings_are_explicit(tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings = load(RunSettings, ["--out", str(tmp_path), *argv])
        settings.require_vendor()


def test_minio_role_arn_is_accepted(tmp_path: Path) -> None:
    settings = load(
        RunSettings,
        ["--out", str(tmp_path), "--exchange", "sts", "--sts-endpoint", "https://minio.example:9000", "--role-arn", "arn:minio:iam:::role/tenant-a", "--ttl", "900"],
    )
    settings.require_vendor()
    assert settings.exchange == "sts"


def test_the_core_import_path_stays_free_of_sandbox_and_aws_libraries() -> None:
    code = (
        "import sys, sidecar.cli, sidecar.loop, sidecar.vendor, sidecar.consumer, sidecar.settings\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aiobotocore', 'botocore', 'moto', 'aiohttp') or m.startswith('sidecar.dev') or m == 'sidecar.sts')\n"
        "print(','.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
