"""Reading a published set the safe way, for the sidecar's own commands and for apps.

Two separate ``open()`` calls of ``OUT/access_key_id`` and ``OUT/secret_access_key``
can land on either side of a swap and mix two generations. :func:`read_credentials`
resolves ``OUT/..data`` once and reads every file from that one generation
directory, so it always returns one consistent set (contract v1).

For applications on aiobotocore / aioboto3 (artifact-store), :func:`refreshable_credentials`
wraps that read in botocore's refreshable credentials, with refresh windows scaled to
the lease (:func:`lease_windows`), and :func:`aio_session` returns an ``AioSession``
whose only credential source is the published directory. See ``docs/consumers.md``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .credentials import Credentials
from .errors import NotPublished
from .publish import DATA_LINK, GENERATION_RE

__all__ = [
    "ADVISORY_FRACTION",
    "MANDATORY_FRACTION",
    "aio_session",
    "lease_windows",
    "read_credentials",
    "refreshable_credentials",
]

_VALUE_FILES = ("access_key_id", "secret_access_key", "session_token", "expiration")
_ATTEMPTS = 5


def _read_generation_files(out_dir: Path) -> tuple[dict[str, str], float]:
    """Resolve ``..data`` once and read the value files from that directory.

    Returns the values and the generation's publication time (the ``expiration``
    file's mtime: the sidecar writes each file once, when it publishes the set).

    If the generation is removed between resolving and reading (the writer swapped
    once meanwhile and removed the previous generation right after its commit),
    resolve again; a few attempts suffice because refreshes are normally a second
    or more apart.
    """
    data_link = out_dir / DATA_LINK
    for _ in range(_ATTEMPTS):
        try:
            generation = os.readlink(data_link)
        except FileNotFoundError as exc:
            raise NotPublished(f"no credentials published in {out_dir} yet") from exc
        except OSError as exc:
            raise NotPublished(f"cannot read {data_link}: {exc.strerror}") from exc
        if not GENERATION_RE.fullmatch(generation):
            raise NotPublished(f"{data_link} does not point at a vend-sidecar generation")
        try:
            dir_fd = os.open(out_dir / generation, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # swapped and cleaned up under us: resolve again
        except OSError as exc:
            raise NotPublished(f"cannot open {out_dir / generation}: {exc.strerror}") from exc
        try:
            values: dict[str, str] = {}
            published_at = 0.0
            for name in _VALUE_FILES:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                with os.fdopen(fd, "rb") as handle:
                    values[name] = handle.read(64 * 1024).decode("ascii")
                    published_at = max(published_at, os.fstat(handle.fileno()).st_mtime)
            return values, published_at
        except FileNotFoundError:
            continue  # the directory was being removed: resolve again
        except (OSError, UnicodeDecodeError) as exc:
            raise NotPublished(f"cannot read the set in {out_dir / generation}: {exc.__class__.__name__}") from exc
        finally:
            os.close(dir_fd)
    raise NotPublished(f"{out_dir} kept changing while being read; try again")


def read_credentials(
    out_dir: str | os.PathLike[str],
    *,
    min_remaining: float = 0.0,
    clock: Callable[[], float] = time.time,
) -> Credentials:
    """One consistent, unexpired credential set from ``out_dir``.

    Raises :class:`~sidecar.errors.NotPublished` when nothing is published, the set is
    incomplete, or it has ``min_remaining`` seconds or less left.
    """
    return _read(Path(out_dir), min_remaining=min_remaining, clock=clock)[0]


def _read(out: Path, *, min_remaining: float, clock: Callable[[], float]) -> tuple[Credentials, float]:
    values, published_at = _read_generation_files(out)
    try:
        expiration = datetime.strptime(values["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise NotPublished(f"{out}/expiration is not YYYY-MM-DDTHH:MM:SSZ") from exc
    for name in ("access_key_id", "secret_access_key", "session_token"):
        if not values[name]:
            raise NotPublished(f"{out}/{name} is empty")
    remaining = expiration.timestamp() - clock()
    if remaining <= min_remaining:
        if remaining <= 0:
            raise NotPublished(f"published credentials expired at {values['expiration']}")
        raise NotPublished(
            f"published credentials expire at {values['expiration']}, "
            f"{int(remaining)} s left (need more than {int(min_remaining)} s)"
        )
    credentials = Credentials(
        access_key_id=values["access_key_id"],
        secret_access_key=SecretStr(values["secret_access_key"]),
        session_token=SecretStr(values["session_token"]),
        expiration=expiration,
    )
    return credentials, published_at


# -- aiobotocore / aioboto3 ------------------------------------------------------------

#: Re-read the files once less than this fraction of the lease remains (advisory: a
#: failed re-read is logged and the current set kept). The sidecar publishes the next
#: set when 23-43 % of the lease remains, so by 20 % a healthy sidecar has replaced it.
ADVISORY_FRACTION = 0.20
#: Below this fraction a failed re-read, or a re-read that finds no newer set, raises.
MANDATORY_FRACTION = 0.10
#: botocore's own windows, kept as the upper bounds for long leases.
_BOTOCORE_ADVISORY, _BOTOCORE_MANDATORY = 15 * 60.0, 10 * 60.0


def lease_windows(lease: float) -> tuple[float, float]:
    """``(advisory, mandatory)`` refresh windows in seconds for a lease (pure).

    botocore's fixed 15/10 min windows put a lease of 15 min or less inside the
    advisory window from the start, so every API call would re-read the files. Scaled
    windows keep the re-read near the end of each set's life:
    ``advisory = min(0.20 * lease, 900)``, ``mandatory = min(0.10 * lease, 600)``.
    """
    lease = max(float(lease), 0.0)
    return min(ADVISORY_FRACTION * lease, _BOTOCORE_ADVISORY), min(MANDATORY_FRACTION * lease, _BOTOCORE_MANDATORY)


def _metadata(credentials: Credentials) -> dict[str, str]:
    """botocore's ``refresh_using`` shape."""
    return {
        "access_key": credentials.access_key_id,
        "secret_key": credentials.secret_access_key.get_secret_value(),
        "token": credentials.session_token.get_secret_value(),
        "expiry_time": credentials.expiration_text,
    }


def refreshable_credentials(
    out_dir: str | os.PathLike[str],
    *,
    lease: float | None = None,
    clock: Callable[[], float] = time.time,
) -> Any:
    """aiobotocore ``AioRefreshableCredentials`` that re-read ``out_dir`` near expiry.

    Every read is :func:`read_credentials` (one ``..data`` resolution, one consistent
    set). In the advisory window a re-read that finds no newer set keeps the current
    one; in the mandatory window it raises :class:`~sidecar.errors.NotPublished`
    (botocore passes the error to the API call), so a stalled sidecar shows up as an
    error before the credentials expire. ``lease`` sets the refresh windows (:func:`lease_windows`); by default it is
    estimated from the first set as ``expiration - publication time``. Raises
    :class:`~sidecar.errors.NotPublished` if nothing valid is published yet.
    Needs aiobotocore (the ``sts`` extra).
    """
    from aiobotocore.credentials import AioRefreshableCredentials

    out = Path(out_dir)
    first, published_at = _read(out, min_remaining=0.0, clock=clock)
    if lease is None:
        lease = max(first.expiration.timestamp() - published_at, 1.0)
    advisory, mandatory = lease_windows(lease)

    def refresh() -> dict[str, str]:
        # A set inside the mandatory window is refused, so that botocore raises
        # instead of quietly signing with credentials about to die.
        return _metadata(read_credentials(out, min_remaining=mandatory, clock=clock))

    return AioRefreshableCredentials(
        access_key=first.access_key_id,
        secret_key=first.secret_access_key.get_secret_value(),
        token=first.session_token.get_secret_value(),
        expiry_time=first.expiration,
        refresh_using=refresh,
        method="vend-sidecar",
        time_fetcher=lambda: datetime.fromtimestamp(clock(), UTC),
        advisory_timeout=advisory,
        mandatory_timeout=mandatory,
    )


class _PublishedDirectoryProvider:
    """A botocore credential provider whose only source is the published directory."""

    METHOD = "vend-sidecar"
    CANONICAL_NAME = "vend-sidecar"

    def __init__(self, out_dir: Path, lease: float | None) -> None:
        self.out_dir = out_dir
        self.lease = lease

    async def load(self) -> Any:
        return refreshable_credentials(self.out_dir, lease=self.lease)


def aio_session(out_dir: str | os.PathLike[str], *, lease: float | None = None) -> Any:
    """An ``aiobotocore.session.AioSession`` that takes credentials only from ``out_dir``.

    The session's credential chain is replaced, not extended: no environment
    variables, shared files or instance metadata are consulted, so a missing set is
    an error rather than a silent fallback to other credentials. For aioboto3:
    ``aioboto3.Session(botocore_session=aio_session(OUT))``.
    """
    from aiobotocore.credentials import AioCredentialResolver
    from aiobotocore.session import AioSession

    session = AioSession()
    session.register_component(
        "credential_provider", AioCredentialResolver([_PublishedDirectoryProvider(Path(out_dir), lease)])
    )
    return session
