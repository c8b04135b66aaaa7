"""One error tree for vend-sidecar, split by what the caller should do.

::

    SidecarError
    ├── ConfigError                bad settings; exit 2 at start-up
    ├── TokenError                 token file missing / unreadable / not a JWT / expired
    ├── VendorError
    │   ├── TransientVendorError   5xx, 429, 3xx, network, timeout, TLS; back off and retry
    │   │   └── InvalidAnswer      a 200 whose body breaks the contract; publish nothing
    │   ├── AuthRejected           401 invalid_token; re-read the token, retry when it changes
    │   └── Denied                 400 / 403 (and other 4xx); a policy or config refusal
    ├── PublishError               the out dir cannot be written; the old set stays
    ├── NotPublished               a reader found no complete, unexpired set
    └── DeadlineExceeded           ``--once`` gave up; carries the last error

The refresh loop decides retry class, wait and exit code from the class alone.
Foreign exceptions (httpx, OSError, pydantic) are translated in exactly one place
each, with ``raise ... from exc``. No message in this tree ever carries a secret:
constructors take only non-secret fields.
"""

from __future__ import annotations

__all__ = [
    "AuthRejected",
    "ConfigError",
    "DeadlineExceeded",
    "Denied",
    "InvalidAnswer",
    "NotPublished",
    "PublishError",
    "SidecarError",
    "TokenError",
    "TransientVendorError",
    "VendorError",
]


class SidecarError(Exception):
    """Root of every error vend-sidecar raises on purpose."""


class ConfigError(SidecarError):
    """A setting is wrong; the message names the flag and the variable. Exit 2."""


class TokenError(SidecarError):
    """The identity token cannot be used yet: missing, unreadable, not a JWT, expired."""


class VendorError(SidecarError):
    """The vending service did not hand out credentials.

    ``request_id`` is the ``X-Request-Id`` of the attempt (non-secret), so that an
    operator can find the attempt in the service's audit log.
    """

    #: Short name of the retry class, used in logs and the ``class`` metric label.
    kind = "transient"

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status: int | None = None,
        error: str | None = None,
        reason: str | None = None,
        decision_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.status = status
        self.error = error
        self.reason = reason
        self.decision_id = decision_id
        self.retry_after = retry_after

    def fields(self) -> dict[str, object]:
        """Non-secret audit fields for a log line."""
        return {
            "status": self.status,
            "error": self.error,
            "reason": self.reason,
            "decision_id": self.decision_id,
            "request_id": self.request_id,
            "retry_after": self.retry_after,
        }


class TransientVendorError(VendorError):
    """5xx, 429, 3xx, network error, timeout or TLS failure: back off with full jitter."""

    kind = "transient"


class InvalidAnswer(TransientVendorError):
    """A 2xx answer that breaks contract v1 (not JSON, missing field, past expiry)."""

    kind = "invalid_answer"


class AuthRejected(VendorError):
    """401 ``invalid_token``: retry at once when the token file changes, else slowly."""

    kind = "auth"


class Denied(VendorError):
    """400 ``invalid_request`` / 403 ``denied``: the configuration or policy must change."""

    kind = "denied"


class PublishError(SidecarError):
    """The output directory could not take a new set; the previous set is untouched."""


class NotPublished(SidecarError):
    """No complete, consistent, unexpired credential set is published (readers)."""


class DeadlineExceeded(SidecarError):
    """``--once`` could not obtain credentials before its deadline."""

    def __init__(self, message: str, *, last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error
