"""The grants file and its decision: the sandbox's stand-in for the policy engine.

In production the vending service asks flex-auth whether a verified principal may
have a bucket, prefix, action set and lease. Here a small TOML file says it::

    [[grant]]
    tenant = "tenant-a"          # the token's ``tenant`` claim
    bucket = "artifacts"
    prefix = "tenant-a/"         # requests may ask for this prefix or one below it
    actions = ["read", "write", "list"]
    ttl_min = 1                  # seconds; a request outside [ttl_min, ttl_max] is
    ttl_max = 3600               # denied with reason ttl_out_of_bounds

:func:`decide` is pure: claims and request in, a :class:`Decision` out. The checks run
in a fixed order, and the first failing one names the contract v1 reason:
``tenant_mismatch`` → ``bucket_not_allowed`` → ``prefix_not_allowed`` →
``action_not_allowed`` → ``ttl_out_of_bounds``.

Each grant is one *role class*: the object store gets one coarse role per grant
(tenant + prefix), and a request is served by the role of the grant that allowed it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError

__all__ = ["CredentialRequest", "Decision", "Grant", "Grants", "decide", "default_grants_toml", "load_grants"]

Action = Literal["read", "write", "list"]
_ROLE_SAFE = re.compile(r"[^A-Za-z0-9+=,.@_-]")


class CredentialRequest(BaseModel):
    """The body of ``POST /v1/credentials`` (contract v1, "Request"), strictly typed:
    a ``true`` is not a TTL and ``"read"`` is not a list of actions."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    protected_system: Literal["object-storage"]
    bucket: str = Field(min_length=1, max_length=63)
    prefix: str = Field(max_length=1024)
    actions: tuple[Action, ...] = Field(min_length=1)
    ttl_seconds: int = Field(gt=0)


class Grant(BaseModel):
    """One line of policy: what a tenant may get, and the role class that serves it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str = Field(min_length=1)
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = ""
    actions: tuple[Action, ...] = Field(min_length=1)
    ttl_min: int = Field(1, ge=1)
    ttl_max: int = Field(3600, ge=1, le=43200)

    @model_validator(mode="after")
    def _bounds(self) -> Grant:
        if self.ttl_min > self.ttl_max:
            raise ValueError("ttl_min must not exceed ttl_max")
        return self

    @property
    def role_name(self) -> str:
        """The object store role of this class: stable, IAM-safe, at most 64 characters."""
        label = _ROLE_SAFE.sub("-", f"{self.tenant}.{self.bucket}.{self.prefix.rstrip('/') or 'all'}")
        return f"vend-{label}"[:64]


class Grants(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    grant: tuple[Grant, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed`` with the grant that allowed it, or a refusal with its contract reason."""

    allowed: bool
    reason: str | None = None
    message: str = ""
    grant: Grant | None = None


def decide(grants: Grants, claims: Mapping[str, object], request: CredentialRequest) -> Decision:
    """The policy decision for one verified token and one well-formed request (pure)."""
    tenant = claims.get("tenant")
    candidates: Sequence[Grant] = [g for g in grants.grant if g.tenant == tenant]
    if not candidates:
        return Decision(False, "tenant_mismatch", "no grant for the token's tenant")
    candidates = [g for g in candidates if g.bucket == request.bucket]
    if not candidates:
        return Decision(False, "bucket_not_allowed", f"tenant may not use bucket {request.bucket!r}")
    candidates = [g for g in candidates if request.prefix.startswith(g.prefix)]
    if not candidates:
        return Decision(False, "prefix_not_allowed", f"tenant may not use prefix {request.prefix!r}")
    candidates = [g for g in candidates if set(request.actions) <= set(g.actions)]
    if not candidates:
        return Decision(False, "action_not_allowed", f"actions {','.join(request.actions)} exceed the grant")
    for grant in candidates:
        if grant.ttl_min <= request.ttl_seconds <= grant.ttl_max:
            return Decision(True, grant=grant)
    bounds = ", ".join(f"[{g.ttl_min}, {g.ttl_max}]" for g in candidates)
    return Decision(False, "ttl_out_of_bounds", f"ttl_seconds {request.ttl_seconds} is outside {bounds}")


def load_grants(path: Path) -> Grants:
    """Parse and validate a grants file; :class:`ConfigError` names the file and the fault."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--grants: cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--grants: {path} is not valid TOML: {exc}") from exc
    try:
        return Grants.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise ConfigError(f"--grants: {path}: {where}: {first.get('msg')}") from None


def default_grants_toml(*, tenant: str, bucket: str, prefix: str, ttl_max: int) -> str:
    """The grants file ``vend-sidecar dev`` writes when none is given: one full grant."""
    return (
        "# vend-sidecar dev: who may have what (the sandbox's stand-in for flex-auth).\n"
        "# Edit a copy and pass it with --grants FILE.\n\n"
        "[[grant]]\n"
        f'tenant = "{tenant}"\n'
        f'bucket = "{bucket}"\n'
        f'prefix = "{prefix}"\n'
        'actions = ["read", "write", "list"]\n'
        "ttl_min = 1\n"
        f"ttl_max = {ttl_max}\n"
    )
