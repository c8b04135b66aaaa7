"""Reading a published set the safe way, for the sidecar's own commands and for apps.

Two separate ``open()`` calls of ``OUT/access_key_id`` and ``OUT/secret_access_key``
can land on either side of a swap and mix two generations. :func:`read_credentials`
resolves ``OUT/..data`` once and reads every file from that one generation
directory, so it always returns one consistent set (contract v1).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from .credentials import Credentials
from .errors import NotPublished
from .publish import DATA_LINK, GENERATION_RE

__all__ = ["read_credentials"]

_VALUE_FILES = ("access_key_id", "secret_access_key", "session_token", "expiration")
_ATTEMPTS = 5


def _read_generation_files(out_dir: Path) -> dict[str, str]:
    """Resolve ``..data`` once and read the value files from that directory.

    If the generation is removed between resolving and reading (the writer swapped
    twice meanwhile), resolve again; a few attempts always suffice because a
    generation lives for at least a second.
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
            for name in _VALUE_FILES:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                with os.fdopen(fd, "rb") as handle:
                    values[name] = handle.read(64 * 1024).decode("ascii")
            return values
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
    out = Path(out_dir)
    values = _read_generation_files(out)
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
    return Credentials(
        access_key_id=values["access_key_id"],
        secret_access_key=SecretStr(values["secret_access_key"]),
        session_token=SecretStr(values["session_token"]),
        expiration=expiration,
    )
