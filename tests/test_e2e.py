"""End to end through real processes: moto_server (S3/STS/IAM, enforcement on), the dev
issuer and dev vending service on loopback, and ``vend-sidecar run`` as a subprocess
with 5 s leases, reading a token directory that the issuer rotates kubelet-style
(8 s tokens, swapped at 80 %). A consumer using :func:`sidecar.consumer.aio_session`
and an aiobotocore S3 client works continuously across credential and token rotations.

moto never expires STS sessions, so "zero failures" alone would not prove that the
consumer follows the rotations: the test also requires that it *used* at least four
distinct published key sets (three rotations), each one that the sidecar logged as
vended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from botocore.exceptions import ClientError

from sidecar.consumer import aio_session, read_credentials
from sidecar.publish import Publisher

from sandbox_parts import AUDIENCE, BUCKET, PREFIX, DevServices, MotoProcess
from sidecar_process import wait_until

LEASE = 5
ROTATIONS = 3
TOKEN_LIFETIME = 8  # the issuer swaps in a new token every 6.4 s, kubelet-style
CONSUMER_DEADLINE = 45.0  # seconds; 3 rotations take about 3 x 3.3 s


def write_token(directory: Path, token: str) -> Path:
    writer = Publisher(directory, file_mode=0o644)
    writer.prepare()
    writer.publish({"token": token.encode()})
    return directory / "token"


def sidecar(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_SIDECAR_", "AWS_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "sidecar", "run", "--log-format", "json", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env=env,
    )


def events(log: Path, name: str) -> list[dict[str, object]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("event") == name:
            out.append(doc)
    return out


def vended_with_rotated_token(log: Path) -> bool:
    fingerprints = {e.get("fingerprint") for e in events(log, "token.loaded")}
    return len(fingerprints) >= 2 and bool(events(log, "token.rotated"))


async def consume(out: Path, endpoint: str, log: Path) -> tuple[list[str], int, int, list[str]]:
    """Put and get under the prefix until ROTATIONS rotations were used and the sidecar
    has vended with a rotated identity token; returns (access keys used in order of
    first use, operations, failures, secrets seen)."""
    session = aio_session(out)
    used: list[str] = []
    secrets: list[str] = []
    operations = failures = 0
    async with session.create_client("s3", endpoint_url=endpoint, region_name="us-east-1") as s3:
        credentials = await session.get_credentials()
        with anyio.fail_after(CONSUMER_DEADLINE):
            while len(used) < ROTATIONS + 1 or not vended_with_rotated_token(log):
                frozen = await credentials.get_frozen_credentials()
                if frozen.access_key not in used:
                    used.append(frozen.access_key)
                    secrets += [frozen.secret_key, frozen.token]
                key = f"{PREFIX}e2e/{operations}"
                body = f"object {operations}".encode()
                try:
                    await s3.put_object(Bucket=BUCKET, Key=key, Body=body)
                    answer = await s3.get_object(Bucket=BUCKET, Key=key)
                    async with answer["Body"] as stream:
                        assert await stream.read() == body
                except ClientError:
                    failures += 1
                operations += 1
                await anyio.sleep(0.02)  # a steady workload, not a benchmark
        # Outside the granted prefix: the role's Resource limits it.
        with pytest.raises(ClientError) as outside:
            await s3.put_object(Bucket=BUCKET, Key="tenant-b/intrusion", Body=b"x")
        assert outside.value.response["Error"]["Code"] == "AccessDenied"
    return used, operations, failures, secrets


@pytest.mark.anyio
async def test_consumer_works_across_rotations_and_enforcement_holds(
    tmp_path: Path, services: DevServices, moto: MotoProcess
) -> None:
    token_file = services.token_file(tmp_path / "tokens", lifetime=TOKEN_LIFETIME).path
    out = tmp_path / "out"
    log = tmp_path / "sidecar.log"
    proc = sidecar(
        "--out", str(out),
        "--vendor-url", services.vendor_url,
        "--token-file", str(token_file),
        "--audience", AUDIENCE,
        "--bucket", BUCKET,
        "--prefix", PREFIX,
        "--actions", "read,write,list",
        "--ttl", str(LEASE),
        log=log,
    )
    try:
        await anyio.to_thread.run_sync(lambda: wait_until(lambda: (out / "..data").is_symlink(), timeout=30, what="the first set"))
        used, operations, failures, secrets = await consume(out, moto.endpoint, log)

        assert failures == 0, f"{failures} of {operations} operations failed"
        vended = [str(e["access_key_id"]) for e in events(log, "vend.success")]
        assert len(used) >= ROTATIONS + 1 and set(used) <= set(vended)

        # A wrong secret with a valid key id and session token: enforcement is on.
        current = read_credentials(out)
        from aiobotocore.session import AioSession

        async with AioSession().create_client(
            "s3",
            endpoint_url=moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id=current.access_key_id,
            aws_secret_access_key="wrong" + current.secret_access_key.get_secret_value()[5:],
            aws_session_token=current.session_token.get_secret_value(),
        ) as forged:
            with pytest.raises(ClientError) as wrong:
                await forged.get_object(Bucket=BUCKET, Key=f"{PREFIX}e2e/0")
        assert wrong.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=20))
    assert code == 0
    text = log.read_text()
    assert not any(secret in text for secret in secrets)
    assert not any(token in text for token in services.minted)


def test_a_token_for_another_audience_gets_no_credentials(tmp_path: Path, services: DevServices) -> None:
    token_file = write_token(tmp_path / "tokens", services.mint(audience="someone-else"))
    out = tmp_path / "out"
    log = tmp_path / "sidecar.log"
    proc = sidecar(
        "--once", "--once-timeout", "30",
        "--out", str(out),
        "--vendor-url", services.vendor_url,
        "--token-file", str(token_file),
        "--bucket", BUCKET,
        "--prefix", PREFIX,
        "--ttl", str(LEASE),
        log=log,
    )
    assert proc.wait(timeout=40) == 3  # permanent refusal
    failure = events(log, "vend.failure")[-1]
    assert failure["status"] == 401 and failure["error"] == "invalid_token" and str(failure["decision_id"]).startswith("dec-")
    assert not (out / "..data").exists() and not (out / "access_key_id").exists()
