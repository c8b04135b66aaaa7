"""``vend-sidecar check`` and ``vend-sidecar credential-process``: read what is published.

Both read OUT with :func:`sidecar.consumer.read_credentials` (``..data`` resolved
once, so one consistent generation) and never talk to the vending service.

``check --out DIR [--min-remaining S]``
    Exit 0 when a consistent set with more than S seconds left is published, 1
    otherwise, with one line saying why (stdout when ready, stderr when not). Made
    for exec probes and scripts; with ``--log-format json`` the line is JSON.

``credential-process --out DIR``
    Print the set as AWS ``credential_process`` JSON (``Version`` 1) on stdout. When
    nothing valid is published: exit 1 and one secret-free line on stderr, which the
    SDK shows to the user. Wire it up in ``~/.aws/config``::

        [default]
        credential_process = vend-sidecar credential-process --out /var/run/vend

    The SDK runs it again shortly before ``Expiration``; each run reads the current set.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from .errors import NotPublished
from .settings import CommonSettings, load

__all__ = ["CheckSettings", "CredentialProcessSettings", "cmd_check", "cmd_credential_process"]

EXIT_READY, EXIT_NOT_READY = 0, 1


class CheckSettings(CommonSettings):
    """Exit 0 when OUT holds a consistent set with more than --min-remaining seconds left, else 1; one line says why. Reads only the files, never the network."""  # noqa: E501 (shown by --help)

    model_config = SettingsConfigDict(cli_prog_name="vend-sidecar check")
    out: Path = Field(description="output directory the sidecar publishes into")
    min_remaining: float = Field(60.0, ge=0, description="seconds of validity the set must still have")


class CredentialProcessSettings(CommonSettings):
    """Print the published set as AWS credential_process JSON (Version 1); exit 1 with a message on stderr when nothing valid is published."""  # noqa: E501 (shown by --help)

    model_config = SettingsConfigDict(cli_prog_name="vend-sidecar credential-process")
    out: Path = Field(description="output directory the sidecar publishes into")
    min_remaining: float = Field(0.0, ge=0, description="refuse a set with this many seconds or fewer left")


def _say(settings: CommonSettings, ok: bool, message: str, **fields: object) -> None:
    stream = sys.stdout if ok else sys.stderr
    if settings.log_format == "json":
        doc = {"event": "check", "ready": ok, "reason": message, **fields}
        print(json.dumps(doc), file=stream)
    else:
        print(f"vend-sidecar: {'ready' if ok else 'not ready'}: {message}", file=stream)


def cmd_check(argv: Sequence[str]) -> int:
    settings = load(CheckSettings, argv)
    from .consumer import read_credentials

    now = time.time()
    try:
        credentials = read_credentials(settings.out, min_remaining=settings.min_remaining, clock=lambda: now)
    except NotPublished as exc:
        _say(settings, False, str(exc), out=str(settings.out))
        return EXIT_NOT_READY
    remaining = int(credentials.expiration.timestamp() - now)
    _say(
        settings,
        True,
        f"credentials in {settings.out} valid until {credentials.expiration_text} ({remaining} s left)",
        out=str(settings.out),
        expiration=credentials.expiration_text,
        remaining_seconds=remaining,
    )
    return EXIT_READY


def cmd_credential_process(argv: Sequence[str]) -> int:
    settings = load(CredentialProcessSettings, argv)
    from .consumer import read_credentials

    try:
        credentials = read_credentials(settings.out, min_remaining=settings.min_remaining)
    except NotPublished as exc:
        print(f"vend-sidecar credential-process: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    document = {
        "Version": 1,
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key.get_secret_value(),
        "SessionToken": credentials.session_token.get_secret_value(),
        "Expiration": credentials.expiration_text,
    }
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()
    return EXIT_READY
