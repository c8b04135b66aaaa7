"""What bytes each published file holds (pure).

The layout is pinned by contract v1, "Published files": four value files without a
trailing newline, an AWS ``credential_process`` JSON document and an AWS
shared-credentials INI file. The whole set is rendered at once so the publisher can
write it as one generation.
"""

from __future__ import annotations

import json

from .credentials import Credentials

__all__ = ["FILE_NAMES", "render"]

FILE_NAMES = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "expiration",
    "credentials.json",
    "credentials",
)


def render(credentials: Credentials) -> dict[str, bytes]:
    """Every published file's name and exact content for one credential set."""
    access_key = credentials.access_key_id
    secret = credentials.secret_access_key.get_secret_value()
    token = credentials.session_token.get_secret_value()
    expiration = credentials.expiration_text
    process_json = json.dumps(
        {
            "Version": 1,
            "AccessKeyId": access_key,
            "SecretAccessKey": secret,
            "SessionToken": token,
            "Expiration": expiration,
        },
        indent=2,
    )
    ini = (
        "# Written by vend-sidecar; replaced atomically before it expires.\n"
        f"# Expires {expiration}. SDKs read this file once: prefer credential_process.\n"
        "[default]\n"
        f"aws_access_key_id = {access_key}\n"
        f"aws_secret_access_key = {secret}\n"
        f"aws_session_token = {token}\n"
    )
    return {
        "access_key_id": access_key.encode(),
        "secret_access_key": secret.encode(),
        "session_token": token.encode(),
        "expiration": expiration.encode(),
        "credentials.json": (process_json + "\n").encode(),
        "credentials": ini.encode(),
    }
