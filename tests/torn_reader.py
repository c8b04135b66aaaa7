"""A consumer process that reads a published set as fast as it can, and counts tears.

Usage: ``python torn_reader.py OUT SECONDS RESULT.json``

Each round does three reads of OUT while the sidecar rotates it:

* ``careful``: :func:`sidecar.consumer.read_credentials` (resolves ``..data`` once,
  reads every file from that one generation directory);
* ``json``: one ``open()`` of ``OUT/credentials.json``;
* ``naive``: three separate ``open()`` calls of the visible names
  ``access_key_id``, ``secret_access_key``, ``session_token``.

The vending double derives the secret and session token from the access key, so a
read that mixes two generations is detected exactly (``vendor_double.is_consistent``).
Writes counts as JSON: reads, torn reads and errors per method, and the distinct
access keys seen (the number of rotations observed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sidecar.consumer import read_credentials  # noqa: E402
from sidecar.errors import NotPublished  # noqa: E402
from vendor_double import is_consistent  # noqa: E402


def main() -> None:
    out, seconds, result_path = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    counts = {f"{m}_{k}": 0 for m in ("careful", "json", "naive") for k in ("reads", "torn", "errors")}
    keys: set[str] = set()
    torn_examples: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            creds = read_credentials(out, clock=lambda: 0.0)  # expiry is not the question here
            counts["careful_reads"] += 1
            keys.add(creds.access_key_id)
            if not is_consistent(
                creds.access_key_id, creds.secret_access_key.get_secret_value(), creds.session_token.get_secret_value()
            ):
                counts["careful_torn"] += 1
                torn_examples.append("careful:" + creds.access_key_id)
        except NotPublished:
            counts["careful_errors"] += 1

        try:
            raw = (out / "credentials.json").read_bytes()
            counts["json_reads"] += 1
            try:
                doc = json.loads(raw)
                ok = is_consistent(doc["AccessKeyId"], doc["SecretAccessKey"], doc["SessionToken"])
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                counts["json_torn"] += 1
                torn_examples.append("json")
        except OSError:
            counts["json_errors"] += 1

        try:
            ak = (out / "access_key_id").read_text()
            secret = (out / "secret_access_key").read_text()
            token = (out / "session_token").read_text()
            counts["naive_reads"] += 1
            if not is_consistent(ak, secret, token):
                counts["naive_torn"] += 1
        except OSError:
            counts["naive_errors"] += 1
    result_path.write_text(json.dumps({**counts, "keys_seen": len(keys), "torn_examples": torn_examples[:5]}))


if __name__ == "__main__":
    main()
