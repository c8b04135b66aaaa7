"""A concurrent reader for :mod:`benchmarks.publish_latency` (run as a script).

::

    python benchmarks/reader.py OUT      # reads until stdin closes, then prints JSON counts

Each read takes one snapshot the way a consumer should: when ``OUT/..data`` exists it
calls :func:`sidecar.consumer.read_credentials` (resolve ``..data`` once, read every
file from that generation); otherwise (the naive in-place layout has no ``..data``)
it reads the visible files directly, which is all such a layout allows. It also
reads the single file ``credentials.json``. A read is *torn* when the access key,
secret and session token do not belong together (the vending double derives the
secret and token from the key), when a file is empty or partial, or when
``credentials.json`` does not parse or names a different key. A snapshot that
kept vanishing under the reader (the writer swapped again and again meanwhile) is
counted as ``retry_exhausted``, and a ``credentials.json`` open that resolved into a
generation the writer was just removing (ENOENT) as ``json_vanished``; neither is a
good or a torn read.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sidecar.consumer import read_credentials  # noqa: E402
from sidecar.errors import NotPublished  # noqa: E402
from vendor_double import is_consistent  # noqa: E402


def _read_direct(out: Path) -> tuple[str, str, str]:
    return tuple((out / name).read_text() for name in ("access_key_id", "secret_access_key", "session_token"))  # type: ignore[return-value]


def read_once(out: Path, counts: dict[str, int]) -> None:
    try:
        if os.path.lexists(out / "..data"):
            creds = read_credentials(out)
            key, secret, token = (
                creds.access_key_id,
                creds.secret_access_key.get_secret_value(),
                creds.session_token.get_secret_value(),
            )
        else:
            key, secret, token = _read_direct(out)
    except NotPublished:
        counts["retry_exhausted"] += 1
        return
    except (OSError, UnicodeDecodeError):
        counts["errors"] += 1
        return
    counts["snapshot_reads"] += 1
    if not (key and is_consistent(key, secret, token)):
        counts["snapshot_torn"] += 1
    try:
        raw = (out / "credentials.json").read_bytes()
    except FileNotFoundError:
        # The link resolved into the previous generation just as the writer removed it:
        # an error the reader retries, never mixed data.
        counts["json_vanished"] += 1
        return
    except OSError:
        counts["errors"] += 1
        return
    try:
        doc = json.loads(raw)
        good = is_consistent(doc["AccessKeyId"], doc["SecretAccessKey"], doc["SessionToken"])
    except (ValueError, KeyError, TypeError):
        good = False
    counts["json_reads"] += 1
    if not good:
        counts["json_torn"] += 1


def main() -> None:
    out = Path(sys.argv[1])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    counts = dict.fromkeys(
        ("snapshot_reads", "snapshot_torn", "json_reads", "json_torn", "json_vanished", "retry_exhausted", "errors"), 0
    )
    read_once(out, counts)
    print("ready", flush=True)
    while not stop.is_set():
        read_once(out, counts)
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
