"""Inspect a published output directory the way a strict reviewer would.

Used by the fault, crash and kill tests: :func:`check_set` asserts that OUT holds
either nothing or one complete, self-consistent set (contract v1 layout, every value
file agreeing with ``credentials.json`` and the INI file, the secret derived from the
access key as the vending double issues it) with no dangling visible link.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from sidecar.credentials import Credentials
from sidecar.publish import DATA_LINK, GENERATION_RE
from sidecar.render import FILE_NAMES, render
from vendor_double import derive, is_consistent

__all__ = ["STEPS", "check_set", "credential_set", "debris", "files_under", "snapshot"]

#: The publisher's steps, in order (``Publisher.on_step`` names); ``rename`` commits.
STEPS = ["validate", "compare", "mkdir", "write", "link_tmp", "rename", "links", "cleanup"]


def credential_set(access_key: str) -> dict[str, bytes]:
    """The rendered files of a self-checking set (secret derived from the key)."""
    secret, token = derive(access_key)
    return render(
        Credentials(
            access_key_id=access_key,
            secret_access_key=SecretStr(secret),
            session_token=SecretStr(token),
            expiration=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1),
        )
    )


def snapshot(out: Path) -> dict[str, bytes]:
    """``..data``'s target and every file of the live generation (resolved once)."""
    target = os.readlink(out / DATA_LINK)
    files = {DATA_LINK: target.encode()}
    for name in sorted(os.listdir(out / target)):
        files[name] = (out / target / name).read_bytes()
    return files


def check_set(out: Path) -> str | None:
    """Assert OUT is empty of sets or holds one complete, consistent set; return its generation."""
    entries = set(os.listdir(out)) if out.is_dir() else set()
    visible = [name for name in FILE_NAMES if name in entries]
    if DATA_LINK not in entries:
        assert not visible, f"visible links {visible} exist but {DATA_LINK} does not (dangling)"
        return None
    assert stat.S_ISLNK(os.lstat(out / DATA_LINK).st_mode), f"{DATA_LINK} is not a symlink"
    generation = os.readlink(out / DATA_LINK)
    assert GENERATION_RE.fullmatch(generation), f"{DATA_LINK} points at {generation!r}"
    gen_dir = out / generation
    assert gen_dir.is_dir() and not gen_dir.is_symlink(), f"{DATA_LINK} -> {generation} is dangling"
    assert sorted(os.listdir(gen_dir)) == sorted(FILE_NAMES), f"{generation} is incomplete: {os.listdir(gen_dir)}"
    values = {name: (gen_dir / name).read_text() for name in FILE_NAMES}
    ak, secret, token = values["access_key_id"], values["secret_access_key"], values["session_token"]
    assert is_consistent(ak, secret, token), f"{generation} mixes two credential sets"
    datetime.strptime(values["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    doc = json.loads(values["credentials.json"])
    assert doc == {
        "Version": 1,
        "AccessKeyId": ak,
        "SecretAccessKey": secret,
        "SessionToken": token,
        "Expiration": values["expiration"],
    }, f"{generation}/credentials.json disagrees with the value files"
    ini = values["credentials"]
    for line in (f"aws_access_key_id = {ak}", f"aws_secret_access_key = {secret}", f"aws_session_token = {token}"):
        assert line in ini, f"{generation}/credentials disagrees with the value files"
    for name in visible:
        path = out / name
        assert path.is_symlink() and os.readlink(path) == f"{DATA_LINK}/{name}", f"{name} is not our link"
        assert path.read_text() == values[name], f"{name} does not resolve into the live set"
    return generation


def debris(out: Path) -> set[str]:
    """Entries that a clean run leaves nowhere: everything but ``..data``, its target
    and the visible links."""
    entries = set(os.listdir(out))
    keep = {DATA_LINK, *FILE_NAMES}
    if DATA_LINK in entries:
        keep.add(os.readlink(out / DATA_LINK))
    return entries - keep


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` (not following links), for leak scans."""
    found: dict[str, bytes] = {}
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                found[str(path)] = path.read_bytes()
    return found
