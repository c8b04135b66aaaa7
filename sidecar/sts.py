"""Direct STS exchange (sandbox only): ``--exchange sts``.

The sidecar itself calls ``AssumeRoleWithWebIdentity`` on an S3-compatible STS (plain
MinIO, a local-identity sandbox) with the pod's token, instead of asking the vending
service. **Not for production**: the platform's rule is that workloads never take
raw IdP tokens to STS; the vending service verifies, asks the policy engine and
decides. This path exists for sandboxes that have no vending service.

:class:`StsExchanger` has the vendor client's interface (``url``,
``async vend(token, request_id) -> Grant``, ``aclose()``), so the refresh loop,
schedule, publisher and error classes are the same. STS answers are translated in
:func:`translate_client_error` / :func:`translate_boto_error` and nowhere else:

=====================================================  ========================
STS answer                                             class
=====================================================  ========================
``AccessDenied``, other 4xx (bad role ARN, ...)        :class:`Denied`
``ExpiredToken``, ``InvalidIdentityToken``,            :class:`AuthRejected`
``IDPRejectedClaim``
throttling, ``STSNotInitialized``, 5xx, network,       :class:`TransientVendorError`
timeout, unparsable answer
=====================================================  ========================

``DurationSeconds`` is always sent (``--ttl``): MinIO otherwise lets the credentials
live until the JWT's ``exp``. With ``--bucket`` set, a session policy narrows the
role to the bucket, prefix and actions (MinIO honours it; moto ignores it).

aiobotocore is imported lazily, so ``vend-sidecar run`` with the default
``--exchange vendor`` never loads it; install the ``sts`` extra to use this module.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from .contract import parse_success
from .credentials import Grant
from .errors import AuthRejected, ConfigError, Denied, InvalidAnswer, TransientVendorError, VendorError
from .token import Token

__all__ = ["StsExchanger", "s3_policy", "translate_boto_error", "translate_client_error"]

#: STS error codes that mean "this token is not acceptable": re-read it, retry slowly.
AUTH_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "InvalidIdentityToken", "IDPRejectedClaim"})
#: STS error codes that mean "try again later", whatever the HTTP status.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "IDPCommunicationError",
        "STSNotInitialized",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
    }
)
_SESSION_UNSAFE = re.compile(r"[^\w+=,.@-]")

_OBJECT_ACTIONS = {
    "read": ["s3:GetObject"],
    "write": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
}


def s3_policy(bucket: str, prefix: str, actions: Iterable[str]) -> dict[str, object]:
    """An IAM policy granting ``actions`` (contract names) under ``bucket/prefix`` only.

    ``read`` and ``write`` map to object actions on ``arn:aws:s3:::bucket/prefix*``;
    ``list`` to ``s3:ListBucket`` on the bucket, limited by an ``s3:prefix`` condition.
    """
    wanted = list(actions)
    statements: list[dict[str, object]] = []
    object_actions = [a for name in ("read", "write") if name in wanted for a in _OBJECT_ACTIONS[name]]
    if object_actions:
        statements.append(
            {"Effect": "Allow", "Action": object_actions, "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"]}
        )
    if "list" in wanted:
        listing: dict[str, object] = {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]}
        if prefix:
            listing["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
        statements.append(listing)
    return {"Version": "2012-10-17", "Statement": statements}


def translate_client_error(exc: Any, request_id: str) -> VendorError:
    """Map a botocore ``ClientError`` from STS to the loop's error classes."""
    error = exc.response.get("Error", {}) if hasattr(exc, "response") else {}
    code = str(error.get("Code") or "unknown")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if hasattr(exc, "response") else None
    fields = dict(request_id=request_id, status=status, error=code)
    if code in AUTH_CODES:
        return AuthRejected(f"STS rejected the web identity token ({code})", **fields)
    if code in TRANSIENT_CODES or (isinstance(status, int) and (status >= 500 or status == 429)):
        return TransientVendorError(f"STS unavailable ({code}, HTTP {status})", **fields)
    return Denied(f"STS refused AssumeRoleWithWebIdentity ({code}, HTTP {status})", **fields)


def translate_boto_error(exc: Exception, request_id: str, timeout: float) -> TransientVendorError:
    """Network, timeout, TLS and unparsable answers: all transient."""
    name = exc.__class__.__name__
    if "Timeout" in name:
        return TransientVendorError(f"STS timed out (limit {timeout:g} s)", request_id=request_id)
    if "SSL" in name:
        return TransientVendorError("TLS with STS failed", request_id=request_id)
    if "Connect" in name or "Connection" in name:
        return TransientVendorError("cannot connect to STS", request_id=request_id)
    return TransientVendorError(f"STS request failed: {name}", request_id=request_id)


class StsExchanger:
    """``AssumeRoleWithWebIdentity`` as a drop-in for :class:`sidecar.vendor.VendorClient`."""

    def __init__(
        self,
        *,
        sts_endpoint: str,
        role_arn: str,
        ttl_seconds: int,
        timeout: float,
        bucket: str | None = None,
        prefix: str = "",
        actions: Iterable[str] = ("read",),
        ca_file: Path | None = None,
        region: str = "us-east-1",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = sts_endpoint.rstrip("/")
        self.role_arn = role_arn
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        self.policy = json.dumps(s3_policy(bucket, prefix, actions)) if bucket else None
        self._ca_file = ca_file
        self._region = region
        self._clock = clock
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._lock = anyio.Lock()

    async def _sts(self) -> Any:
        async with self._lock:
            if self._client is None:
                try:
                    from aiobotocore.config import AioConfig
                    from aiobotocore.session import AioSession
                    from botocore import UNSIGNED
                except ImportError as exc:  # pragma: no cover - depends on the install
                    raise ConfigError(
                        "--exchange sts needs aiobotocore: pip install 'vend-sidecar[sts]'"
                    ) from exc
                import certifi

                config = AioConfig(
                    signature_version=UNSIGNED,  # the web identity token is the credential
                    retries={"total_max_attempts": 1},  # the refresh loop owns retries
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    proxies={},
                )
                self._client = await self._stack.enter_async_context(
                    AioSession().create_client(
                        "sts",
                        endpoint_url=self.url,
                        region_name=self._region,
                        config=config,
                        verify=str(self._ca_file) if self._ca_file else certifi.where(),
                    )
                )
        return self._client

    async def vend(self, token: Token, request_id: str | None = None) -> Grant:
        """One ``AssumeRoleWithWebIdentity``; the answer is checked like a vendor answer."""
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        request_id = request_id or "sts"
        session_name = _SESSION_UNSAFE.sub("-", token.subject or "vend-sidecar")[:64].ljust(2, "-")
        params: dict[str, object] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": session_name,
            "WebIdentityToken": token.value.get_secret_value(),
            "DurationSeconds": self.ttl_seconds,
        }
        if self.policy is not None:
            params["Policy"] = self.policy
        sts = await self._sts()
        try:
            answer = await sts.assume_role_with_web_identity(**params)
        except ClientError as exc:
            raise translate_client_error(exc, request_id) from exc
        except (BotoCoreError, ResponseParserError) as exc:
            # Only the class name is kept: a parser error's text holds the raw answer,
            # which may be a credential set.
            raise translate_boto_error(exc, request_id, self.timeout) from None
        return self._grant(answer, request_id)

    def _grant(self, answer: dict[str, Any], request_id: str) -> Grant:
        credentials = answer.get("Credentials") or {}
        expiration = credentials.get("Expiration")
        if not isinstance(credentials, dict) or expiration is None or not hasattr(expiration, "isoformat"):
            raise InvalidAnswer("STS answer lacks Credentials or Expiration", request_id=request_id)
        # The same validation as a vendor answer: non-empty, no white space, future expiry.
        doc = {
            "access_key_id": credentials.get("AccessKeyId"),
            "secret_access_key": credentials.get("SecretAccessKey"),
            "session_token": credentials.get("SessionToken"),
            "expiration": expiration.isoformat(),
            "ttl_seconds": self.ttl_seconds,
            "backend": "sts",
        }
        headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        try:
            grant = parse_success(json.dumps(doc).encode(), now=self._clock(), date_header=headers.get("date"))
        except InvalidAnswer as exc:
            exc.request_id = request_id
            raise
        assumed = (answer.get("AssumedRoleUser") or {}).get("AssumedRoleId")
        lease = _SESSION_UNSAFE.sub("-", str(assumed))[:128] if assumed else None
        sts_request = answer.get("ResponseMetadata", {}).get("RequestId")
        return Grant(
            credentials=grant.credentials,
            lifetime=grant.lifetime,
            ttl_seconds=grant.ttl_seconds,
            decision_id=_SESSION_UNSAFE.sub("-", str(sts_request))[:128] if sts_request else None,
            lease_id=lease,
            backend=grant.backend,
            clock_skew=grant.clock_skew,
        )

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None
