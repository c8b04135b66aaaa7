"""The AWS container-credentials endpoint, so any AWS SDK refreshes by itself.

SDKs that see ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (plus
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``) GET that URL with the token file's
content as ``Authorization`` and expect
``{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}``; they fetch again
before ``Expiration`` (botocore: 15 min before, advisory; 10 min, mandatory). This
is the protocol ECS and EKS Pod Identity serve.

Security:

* loopback only (checked in settings): anything that can reach the port and knows
  the token gets credentials;
* the auth token file is re-read on every request (so it can be rotated) and
  compared in constant time (``hmac.compare_digest``); neither value is ever logged;
* every answer comes from :func:`sidecar.consumer.read_credentials`: one consistent
  generation, never an expired set. Nothing is cached in memory.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .consumer import read_credentials
from .errors import NotPublished
from .logs import event

__all__ = ["PATH", "container_credentials_app", "read_auth_token"]

#: The one path served (EKS Pod Identity uses the same one).
PATH = "/v1/credentials"
_MAX_TOKEN_BYTES = 4096


def _answer(start_response: Callable[..., Any], status: str, doc: dict[str, Any]) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
    return [json.dumps(doc).encode()]


def read_auth_token(path: Path) -> bytes | None:
    """The expected Authorization value (file content, surrounding white space
    stripped), or None when the file is missing, unreadable, empty or over 4 KiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(_MAX_TOKEN_BYTES + 1)
    except OSError:
        return None
    token = data.strip()
    return token if token and len(data) <= _MAX_TOKEN_BYTES else None


def container_credentials_app(*, out: Path, auth_token_file: Path) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """WSGI app serving ``GET /v1/credentials`` from the set published in ``out``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR")
        if environ.get("PATH_INFO") != PATH:
            return _answer(start_response, "404 Not Found", {"code": "NotFound", "message": f"use GET {PATH}"})
        if environ.get("REQUEST_METHOD") != "GET":
            return _answer(start_response, "405 Method Not Allowed", {"code": "MethodNotAllowed", "message": "use GET"})
        expected = read_auth_token(auth_token_file)
        if expected is None:
            event(logging.ERROR, "container_credentials.misconfigured", auth_token_file=str(auth_token_file),
                  reason="auth token file missing, unreadable, empty or over 4 KiB")
            return _answer(start_response, "500 Internal Server Error",
                           {"code": "ServerMisconfigured", "message": "the sidecar cannot read its auth token file"})
        presented = environ.get("HTTP_AUTHORIZATION", "").strip().encode("latin-1")
        if not presented:
            event(logging.WARNING, "container_credentials.denied", peer=peer, reason="no Authorization header")
            return _answer(start_response, "401 Unauthorized",
                           {"code": "Unauthorized", "message": "send the auth token file's content as Authorization"})
        if not hmac.compare_digest(presented, expected):
            event(logging.WARNING, "container_credentials.denied", peer=peer, reason="wrong Authorization")
            return _answer(start_response, "403 Forbidden", {"code": "Forbidden", "message": "wrong Authorization"})
        try:
            credentials = read_credentials(out)
        except NotPublished as exc:
            event(logging.WARNING, "container_credentials.unavailable", peer=peer, reason=str(exc))
            return _answer(start_response, "503 Service Unavailable", {"code": "CredentialsNotReady", "message": str(exc)})
        event(logging.DEBUG, "container_credentials.served", peer=peer,
              access_key_id=credentials.access_key_id, expiration=credentials.expiration_text)
        return _answer(start_response, "200 OK", {
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key.get_secret_value(),
            "Token": credentials.session_token.get_secret_value(),
            "Expiration": credentials.expiration_text,
        })

    return app
