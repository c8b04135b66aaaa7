"""The validated credential set: a plain value whose repr never shows a secret.

``secret_access_key`` and ``session_token`` are ``pydantic.SecretStr``: ``str()`` and
``repr()`` print ``**********``; only ``get_secret_value()`` gives the value, and only
the renderer calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import SecretStr

__all__ = ["Credentials", "Grant", "format_expiration"]


def format_expiration(moment: datetime) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SSZ``, the form every published file uses."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Credentials:
    """One complete set of temporary object-storage credentials."""

    access_key_id: str
    secret_access_key: SecretStr = field(repr=False)
    session_token: SecretStr = field(repr=False)
    expiration: datetime  # timezone-aware, UTC

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, "
            f"secret_access_key='**********', session_token='**********', "
            f"expiration={format_expiration(self.expiration)!r})"
        )

    __str__ = __repr__

    @property
    def expiration_text(self) -> str:
        return format_expiration(self.expiration)


@dataclass(frozen=True, slots=True)
class Grant:
    """A successful vend: the credentials plus what the schedule and audit log need.

    ``lifetime`` is the number of seconds the set stays valid counted from the
    moment the answer was received, in the local clock's frame. It is taken from the
    wall clock unless the vendor's ``Date`` header shows more than 30 s of skew, in
    which case it comes from the granted ``ttl_seconds`` (contract v1).
    """

    credentials: Credentials
    lifetime: float
    ttl_seconds: int | None = None
    decision_id: str | None = None
    lease_id: str | None = None
    backend: str | None = None
    clock_skew: float | None = None

    def audit_fields(self) -> dict[str, object]:
        return {
            "access_key_id": self.credentials.access_key_id,
            "decision_id": self.decision_id,
            "lease_id": self.lease_id,
            "backend": self.backend,
            "granted_ttl": self.ttl_seconds,
            "lifetime": round(self.lifetime, 3),
            "expiration": self.credentials.expiration_text,
        }
