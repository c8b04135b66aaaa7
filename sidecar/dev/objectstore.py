"""moto in server mode as the sandbox's object store (S3 + STS + IAM over real HTTP).

Production uses MinIO: the vending service exchanges with MinIO's STS
``AssumeRoleWithWebIdentity``, and MinIO checks the JWT against the issuer. Stock moto
cannot play that part with IAM enforcement on (an unsigned
``AssumeRoleWithWebIdentity`` returns HTTP 500, and moto never validates the JWT
anyway), so the sandbox is shaped the way stock moto allows, without patching it:

1. :func:`provision` runs with enforcement *off*: it creates the buckets, one IAM
   user for the vending service (the *parent* credentials, allowed only
   ``sts:AssumeRole``), and one coarse role per grant (tenant + prefix class) whose
   inline policy allows the grant's actions under ``bucket/prefix*`` only.
2. :func:`enforce` switches IAM enforcement on (``POST /moto-api/reset-auth``). From
   then on S3 rejects unknown keys, wrong secrets and wrong session tokens, and the
   role's ``Resource`` prefix is enforced.
3. :class:`StsBackend` is the vending service's signed ``AssumeRole`` with the parent
   keys; the vending service has already verified the JWT itself.

moto's known limits (``docs/sandbox.md``): it never expires credentials, and it
ignores session policies and ``Condition`` blocks. Everything here binds to
127.0.0.1 only.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from ..sts import s3_policy
from .grants import Grants

__all__ = ["MotoServer", "Provisioned", "StsBackend", "StsBackendError", "enforce", "provision"]

REGION = "us-east-1"
PARENT_USER = "vend-dev-vending-service"
_SESSION_UNSAFE = re.compile(r"[^\w+=,.@-]")


class MotoServer:
    """``moto.server.ThreadedMotoServer`` on 127.0.0.1 and a free port, quiet."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._server: Any = None
        self.endpoint = ""

    def start(self) -> str:
        from moto.server import ThreadedMotoServer  # heavy: only the sandbox pays for it

        # werkzeug logs every request line at INFO on its own handler; keep errors only.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=self._host, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@dataclass(frozen=True)
class Provisioned:
    """What :func:`provision` made: the parent keys and the role of each grant."""

    endpoint: str
    access_key_id: str
    secret_access_key: SecretStr = field(repr=False)
    role_arns: dict[str, str]  # role name -> ARN
    region: str = REGION


def _client(session: Any, service: str, endpoint: str, access_key: str, secret: str) -> Any:
    from aiobotocore.config import AioConfig

    return session.create_client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=AioConfig(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


async def provision(endpoint: str, grants: Grants) -> Provisioned:
    """Create buckets, the parent user and one role per grant; enforcement must be off."""
    from aiobotocore.session import AioSession

    session = AioSession()
    # Any key works while enforcement is off; these never reach a request after it.
    setup_key, setup_secret = "setup-before-enforcement", "setup-before-enforcement"
    async with _client(session, "s3", endpoint, setup_key, setup_secret) as s3, _client(
        session, "iam", endpoint, setup_key, setup_secret
    ) as iam:
        for bucket in sorted({g.bucket for g in grants.grant}):
            await s3.create_bucket(Bucket=bucket)
        user = (await iam.create_user(UserName=PARENT_USER))["User"]
        key = (await iam.create_access_key(UserName=PARENT_USER))["AccessKey"]
        role_arns: dict[str, str] = {}
        for grant in grants.grant:
            name = grant.role_name
            if name in role_arns:
                continue
            trust = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}],
            }
            role = (await iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust)))["Role"]
            policy = s3_policy(grant.bucket, grant.prefix, grant.actions)
            await iam.put_role_policy(RoleName=name, PolicyName="objects", PolicyDocument=json.dumps(policy))
            role_arns[name] = role["Arn"]
        parent_policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": sorted(role_arns.values())}],
        }
        await iam.put_user_policy(UserName=PARENT_USER, PolicyName="assume-tenant-roles", PolicyDocument=json.dumps(parent_policy))
    return Provisioned(
        endpoint=endpoint,
        access_key_id=key["AccessKeyId"],
        secret_access_key=SecretStr(key["SecretAccessKey"]),
        role_arns=role_arns,
    )


async def enforce(endpoint: str) -> None:
    """Switch moto's IAM enforcement on: every later request must be signed by a known key."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        response = await http.post(
            f"{endpoint}/moto-api/reset-auth", content=b"0", headers={"Content-Type": "text/plain"}
        )
        response.raise_for_status()


class StsBackendError(Exception):
    """The object store's STS did not answer with credentials (network, 5xx, refusal)."""


class StsBackend:
    """Signed ``AssumeRole`` with the vending service's parent keys, one client reused."""

    def __init__(self, provisioned: Provisioned, *, timeout: float = 5.0) -> None:
        self.provisioned = provisioned
        self._timeout = timeout
        self._client: Any = None
        self._context: Any = None

    async def _sts(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import AioSession

            p = self.provisioned
            self._context = AioSession().create_client(
                "sts",
                endpoint_url=p.endpoint,
                region_name=p.region,
                aws_access_key_id=p.access_key_id,
                aws_secret_access_key=p.secret_access_key.get_secret_value(),
                config=AioConfig(
                    retries={"total_max_attempts": 1},
                    connect_timeout=self._timeout,
                    read_timeout=self._timeout,
                ),
            )
            self._client = await self._context.__aenter__()
        return self._client

    async def assume(
        self, *, role_name: str, session_name: str, duration: int, policy: dict[str, object]
    ) -> tuple[dict[str, str], datetime]:
        """Credentials for one lease: ``({AccessKeyId, SecretAccessKey, SessionToken}, expiration)``.

        ``policy`` is the session policy that narrows the coarse role to the request;
        MinIO applies it, moto ignores it (``docs/sandbox.md``).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        arn = self.provisioned.role_arns[role_name]
        name = _SESSION_UNSAFE.sub("-", session_name)[:64].ljust(2, "-")
        try:
            sts = await self._sts()
            answer = await sts.assume_role(
                RoleArn=arn, RoleSessionName=name, DurationSeconds=duration, Policy=json.dumps(policy)
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise StsBackendError(f"STS refused AssumeRole: {code}") from exc
        except BotoCoreError as exc:
            raise StsBackendError(f"STS unreachable: {exc.__class__.__name__}") from exc
        credentials = answer["Credentials"]
        return (
            {k: credentials[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")},
            credentials["Expiration"],
        )

    async def aclose(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._context = self._client = None
