"""Publish one self-checking set into OUT and die mid-way with ``os._exit``.

Usage: ``python crash_publish.py OUT ACCESS_KEY step:NAME|write:N``

``step:NAME`` dies right after the publisher's step NAME (its ``on_step`` hook);
``write:N`` dies after N ``os.write`` calls, i.e. inside a half-written generation.
``os._exit`` runs no ``finally`` block and no cleanup, like a SIGKILL or a power cut
(minus the page cache, which the publisher's fsyncs cover). Exit code 0 means the
crash point was never reached.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parent))

from sidecar.credentials import Credentials  # noqa: E402
from sidecar.publish import Publisher  # noqa: E402
from sidecar.render import render  # noqa: E402
from vendor_double import derive  # noqa: E402

CRASHED = 86


def main() -> None:
    out, access_key, where = sys.argv[1], sys.argv[2], sys.argv[3]
    kind, _, arg = where.partition(":")
    secret, token = derive(access_key)
    creds = Credentials(
        access_key_id=access_key,
        secret_access_key=SecretStr(secret),
        session_token=SecretStr(token),
        expiration=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1),
    )

    def on_step(step: str) -> None:
        if kind == "step" and step == arg:
            os._exit(CRASHED)

    if kind == "write":
        real_write, left = os.write, [int(arg)]

        def write(fd: int, data: bytes) -> int:  # type: ignore[override]
            if left[0] == 0:
                os._exit(CRASHED)
            left[0] -= 1
            return real_write(fd, data)

        os.write = write  # type: ignore[assignment]
    publisher = Publisher(Path(out), on_step=on_step)
    publisher.prepare()
    publisher.publish(render(creds))


if __name__ == "__main__":
    main()
