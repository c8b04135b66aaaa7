"""``vend-sidecar dev --out DIR``: the whole flow on loopback, in one process.

Start-up order, each step waiting for the one before::

    moto (S3+STS+IAM, 127.0.0.1:free) ─► provision (bucket, parent user, roles) ─► enforcement on
    issuer (ES256, OIDC + JWKS)       ─► first token in STATE/tokens/token (rotated at 80 %)
    dev vending service (contract v1) ─► the sidecar's own RefreshLoop writing DIR
                                         └─► banner once the first set is published

Ctrl-C or SIGTERM cancels the task group; the loop, the vending service, the issuer
and moto stop in reverse order and the state directory (token, grants) is removed.
The published set in DIR stays, as in production (it is useless once moto is gone).

Nothing here is a default of ``vend-sidecar run``: the loopback vendor URL, the token
file and the dev keys exist only inside this process and are handed to the loop
explicitly.
"""

from __future__ import annotations

import logging
import random
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
from pydantic import Field, field_validator

from ..cli import stop_on_signals
from ..credentials import Grant
from ..logs import configure, event
from ..loop import LoopObserver, RefreshLoop
from ..publish import Publisher, PublishResult
from ..settings import CommonSettings, load
from ..vendor import VendorClient, build_http_client
from .grants import Grants, default_grants_toml, load_grants
from .issuer import LocalIssuer, TokenFile
from .objectstore import MotoServer, StsBackend, enforce, provision
from .vending import DevVendingService

__all__ = ["DevSettings", "banner", "cmd_dev"]

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class DevSettings(CommonSettings):
    """Run the whole flow on loopback: identity issuer, dev vending service, moto S3/STS
    with IAM enforcement, and the sidecar writing OUT with short leases. Ctrl-C stops
    it. For a laptop only: nothing here is a default of 'vend-sidecar run'.
    """

    out: Path = Field(description="output directory for the credential files")
    lease: int = Field(60, ge=1, le=3600, description="lease the sidecar requests, seconds (short, so rotation is visible)")
    token_ttl: int = Field(600, ge=10, le=86400, description="lifetime of the issued identity tokens, seconds (rotated at 80 %)")
    tenant: str = Field("tenant-a", description="the tenant claim of the issued token")
    bucket: str = Field("artifacts", description="bucket to create and request")
    prefix: str = Field("tenant-a/", description="key prefix to grant and request")
    actions: str = Field("read,write,list", description="comma-separated subset of read,write,list to request")
    audience: str = Field("vend.dev.local", description="audience of the issued token, checked by the vending service")
    grants: Path | None = Field(None, description="grants file (TOML, see docs/sandbox.md); default: one grant for --tenant/--bucket/--prefix")

    @field_validator("tenant", "bucket")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError("use lowercase letters, digits and '-' (at most 63)")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value.startswith("/") or '"' in value or "\\" in value or any(not ch.isprintable() for ch in value):
            raise ValueError("must be a relative key prefix such as 'tenant-a/'")
        return value

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts or not set(parts) <= {"read", "write", "list"}:
            raise ValueError("give a comma-separated subset of read,write,list")
        return ",".join(parts)


def banner(*, out: Path, endpoint: str, bucket: str, prefix: str, vendor_url: str, issuer: str, token_file: Path, grants_file: Path, lease: int) -> str:
    """What a newcomer needs: where the files are and one command to try them."""
    python = shlex.quote(sys.executable)
    quoted_out = shlex.quote(str(out))
    probe = (
        f"{python} -m sidecar.dev.probe --out {quoted_out} --endpoint-url {endpoint} "
        f"--bucket {bucket} --prefix {shlex.quote(prefix)}"
    )
    aws = (
        f"AWS_SHARED_CREDENTIALS_FILE={shlex.quote(str(out / 'credentials'))} AWS_CONFIG_FILE=/dev/null "
        f"aws --region us-east-1 --endpoint-url {endpoint} s3 ls s3://{bucket}/{prefix}"
    )
    lines = [
        "",
        "vend-sidecar dev: the whole flow on loopback (Ctrl-C stops it)",
        f"  credentials   {out}/{{access_key_id,secret_access_key,session_token,expiration,credentials.json,credentials}}",
        f"  lease         {lease} s, refreshed at about two thirds",
        f"  S3 endpoint   {endpoint}   (moto, IAM enforcement on, region us-east-1)",
        f"  bucket        {bucket}",
        f"  prefix        {prefix or '(whole bucket)'}",
        f"  vending API   {vendor_url}/v1/credentials",
        f"  issuer        {issuer}   (token file {token_file})",
        f"  grants        {grants_file}",
        "",
        "Try the credentials (put, get and list under the prefix; a write outside it is denied):",
        f"  {probe}",
        "or with the AWS CLI, if installed:",
        f"  {aws}",
        "",
    ]
    return "\n".join(lines)


class _BannerOnFirstPublish(LoopObserver):
    def __init__(self, text: str) -> None:
        self.text = text
        self.shown = False

    def published(self, grant: Grant, result: PublishResult, now: float) -> None:
        if not self.shown:
            self.shown = True
            print(self.text, flush=True)


async def _dev(settings: DevSettings) -> int:
    """Own the signals from the first moment, so Ctrl-C during start-up also cleans up."""
    out = settings.out.resolve()
    with tempfile.TemporaryDirectory(prefix="vend-dev-") as state_name:
        state = Path(state_name)
        if settings.grants is not None:
            grants_file = settings.grants.resolve()
        else:
            grants_file = state / "grants.toml"
            grants_file.write_text(
                default_grants_toml(
                    tenant=settings.tenant, bucket=settings.bucket, prefix=settings.prefix, ttl_max=max(settings.lease, 3600)
                )
            )
        grants = load_grants(grants_file)  # a bad file is exit 2 before anything starts

        stoppers: list[Callable[[], None]] = []
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signals, tg.cancel_scope, lambda: [stop() for stop in stoppers])
            try:
                await _start(settings, out, state, grants_file, grants, stoppers)
            except Exception as exc:  # re-raised below, outside the group, unwrapped
                failure = exc
            finally:
                tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return 0


async def _start(
    settings: DevSettings, out: Path, state: Path, grants_file: Path, grants: Grants, stoppers: list[Callable[[], None]]
) -> None:
    moto = MotoServer()
    await anyio.to_thread.run_sync(moto.start)
    try:
        await _serve(settings, out, state, grants_file, grants, moto.endpoint, stoppers)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(moto.stop)
        event(logging.INFO, "dev.stopped")


async def _serve(
    settings: DevSettings,
    out: Path,
    state: Path,
    grants_file: Path,
    grants: Grants,
    endpoint: str,
    stoppers: list[Callable[[], None]],
) -> None:
    provisioned = await provision(endpoint, grants)
    await enforce(endpoint)
    event(logging.INFO, "dev.objectstore", endpoint=endpoint, roles=",".join(sorted(provisioned.role_arns)))
    backend = StsBackend(provisioned)
    try:
        async with LocalIssuer() as issuer, DevVendingService(
            issuer=issuer.url, audience=settings.audience, grants=grants, backend=backend
        ) as vending:
            subject = f"system:serviceaccount:{settings.tenant}:dev"
            token_file = TokenFile(
                state / "tokens",
                lambda: issuer.mint(audience=settings.audience, subject=subject, tenant=settings.tenant, lifetime=settings.token_ttl),
                lifetime=settings.token_ttl,
            )
            rng = random.Random()
            http = build_http_client(timeout=10.0)
            async with http:
                vendor = VendorClient(
                    vendor_url=vending.url,
                    bucket=settings.bucket,
                    prefix=settings.prefix,
                    actions=settings.actions.split(","),
                    ttl_seconds=settings.lease,
                    http=http,
                )
                observer = _BannerOnFirstPublish(
                    banner(
                        out=out,
                        endpoint=endpoint,
                        bucket=settings.bucket,
                        prefix=settings.prefix,
                        vendor_url=vending.url,
                        issuer=issuer.url,
                        token_file=token_file.path,
                        grants_file=grants_file,
                        lease=settings.lease,
                    )
                )
                loop = RefreshLoop(
                    token_file=token_file.path,
                    vendor=vendor,
                    publisher=Publisher(out, rng=rng),
                    audience=settings.audience,
                    rng=rng,
                    observer=observer,
                )
                stoppers.append(loop.stop)  # ends the token watcher's thread promptly
                async with anyio.create_task_group() as tg:
                    await tg.start(token_file.run)
                    event(logging.INFO, "dev.ready", vendor_url=vending.url, issuer=issuer.url, out=str(out), lease=settings.lease)
                    await loop.run()  # until a signal cancels the outer group
    finally:
        with anyio.CancelScope(shield=True):
            await backend.aclose()


def cmd_dev(argv: Sequence[str]) -> int:
    """Entry point of ``vend-sidecar dev``; returns the exit code."""
    settings = load(DevSettings, argv)
    configure(fmt=settings.log_format, level=settings.log_level)
    return anyio.run(_dev, settings)
