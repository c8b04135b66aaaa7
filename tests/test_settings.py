"""Settings precedence and validation messages (flags > environment > defaults)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.settings import RunSettings, load

BASE = ["--out", "/tmp/o"]


def test_defaults() -> None:
    s = load(RunSettings, BASE)
    assert s.ttl == 1800 and s.file_mode_int == 0o440 and s.log_format == "text"
    assert s.token_file == Path("/var/run/secrets/tokens/vend-token")
    assert s.actions == ("read",) and s.prefix == "" and s.once is False and s.timeout == 10


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEND_SIDECAR_OUT", "/env/out")
    monkeypatch.setenv("VEND_SIDECAR_VENDOR_URL", "https://vend.platform.svc/")
    monkeypatch.setenv("VEND_SIDECAR_ACTIONS", "read, write,list")
    monkeypatch.setenv("VEND_SIDECAR_TTL", "900")
    monkeypatch.setenv("VEND_SIDECAR_ONCE", "true")
    monkeypatch.setenv("VEND_SIDECAR_LOG_FORMAT", "JSON")
    s = load(RunSettings, [])
    assert s.out == Path("/env/out") and s.vendor_url == "https://vend.platform.svc"
    assert s.actions == ("read", "write", "list") and s.ttl == 900 and s.once is True and s.log_format == "json"


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEND_SIDECAR_OUT", "/env/out")
    monkeypatch.setenv("VEND_SIDECAR_TTL", "900")
    monkeypatch.setenv("VEND_SIDECAR_ACTIONS", "list")
    s = load(RunSettings, ["--out", "/flag/out", "--ttl", "1200", "--actions", "read,write"])
    assert s.out == Path("/flag/out") and s.ttl == 1200 and s.actions == ("read", "write")


def test_a_bad_environment_value_is_overridden_by_a_good_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEND_SIDECAR_TTL", "not-a-number")
    assert load(RunSettings, [*BASE, "--ttl", "60"]).ttl == 60


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--ttl", "abc"], "--ttl / VEND_SIDECAR_TTL: Input should be a valid integer"),
        (["--ttl", "0"], "--ttl / VEND_SIDECAR_TTL"),
        (["--actions", "read,delete"], "--actions / VEND_SIDECAR_ACTIONS"),
        (["--actions", ","], "--actions / VEND_SIDECAR_ACTIONS: give at least one"),
        (["--file-mode", "rw"], "--file-mode / VEND_SIDECAR_FILE_MODE: must be an octal mode"),
        (["--file-mode", "0040"], "lets the owner read"),
        (["--vendor-url", "http://vend.example"], "--vendor-url / VEND_SIDECAR_VENDOR_URL: vendor URL 'http://vend.example' uses plain http"),
        (["--bucket", "Not_A_Bucket"], "--bucket / VEND_SIDECAR_BUCKET: must be an S3 bucket name"),
        (["--prefix", "/abs/"], "--prefix / VEND_SIDECAR_PREFIX"),
        (["--log-format", "xml"], "--log-format / VEND_SIDECAR_LOG_FORMAT"),
        (["--client-cert", "/c.pem"], "--client-cert and --client-key"),
        (["--timeout", "0"], "--timeout / VEND_SIDECAR_TIMEOUT"),
        (["--bogus", "1"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_values_name_flag_and_variable(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(RunSettings, [*BASE, *argv])
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_out_names_both() -> None:
    with pytest.raises(ConfigError, match="--out / VEND_SIDECAR_OUT: required"):
        load(RunSettings, [])


def test_env_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEND_SIDECAR_TTL", "soon")
    with pytest.raises(ConfigError, match="VEND_SIDECAR_TTL"):
        load(RunSettings, BASE)


def test_require_vendor_says_how_to_configure() -> None:
    s = load(RunSettings, BASE)
    with pytest.raises(ConfigError, match="VEND_SIDECAR_VENDOR_URL"):
        s.require_vendor()
    s = load(RunSettings, [*BASE, "--vendor-url", "https://v.example"])
    with pytest.raises(ConfigError, match="--bucket"):
        s.require_vendor()
