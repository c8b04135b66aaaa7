"""Settings: one pydantic-settings model per command, flags in kebab case, env prefix
``VEND_SIDECAR_``.

Precedence, highest first (``settings_customise_sources`` and the CLI source):

1. command-line flags (``--vendor-url``)
2. environment (``VEND_SIDECAR_VENDOR_URL``)
3. defaults

A validation failure becomes one :class:`~sidecar.errors.ConfigError` line that names
the flag *and* the variable (:func:`load`). No setting is a secret: the token comes
from a file, never from argv or the environment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    CliApp,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from .contract import ACTIONS, check_vendor_url
from .errors import ConfigError

__all__ = ["CommonSettings", "ENV_PREFIX", "RunSettings", "env_name", "flag_name", "load"]

ENV_PREFIX = "VEND_SIDECAR_"
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
Action = Literal["read", "write", "list"]
S = TypeVar("S", bound="CommonSettings")


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


class CommonSettings(BaseSettings):
    """Settings every command shares."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        cli_kebab_case=True,
        cli_prog_name="vend-sidecar",
        cli_implicit_flags=True,
        cli_exit_on_error=False,
        cli_hide_none_type=True,
        cli_show_env_vars=True,
        extra="ignore",
        validate_default=True,
    )

    log_format: Literal["text", "json"] = Field("text", description="log format: text for people, json for machines")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI flags arrive as init kwargs from CliApp and so rank first; then the
        # environment. No .env file and no secrets directory: nothing implicit.
        return (init_settings, env_settings)


class RunSettings(CommonSettings):
    """Keep OUT supplied with fresh object-storage credentials from the vending service.

    Commands: run (default), check, credential-process, dev. Use
    'vend-sidecar COMMAND --help' for each. Every flag also reads VEND_SIDECAR_<NAME>;
    flags win. Exit codes: 0 ok or clean stop, 2 configuration error, 3 permanent
    refusal (400/401/403) with --once, 4 --once ran out of time.
    """

    out: Path = Field(description="output directory for the credential files (the shared volume)")
    vendor_url: str | None = Field(None, description="base URL of the credential-vending service (https://, or http:// to loopback)")
    token_file: Path = Field(Path("/var/run/secrets/tokens/vend-token"), description="the pod's identity token file (projected, rotated by kubelet)")
    audience: str | None = Field(None, description="expected token audience; a token without it is reported clearly")
    bucket: str | None = Field(None, description="bucket to request access to")
    prefix: str = Field("", description="key prefix within the bucket ('' for the whole bucket)")
    actions: Annotated[tuple[Action, ...], NoDecode] = Field(("read",), description="comma-separated subset of read,write,list")
    ttl: int = Field(1800, ge=1, le=43200, description="requested lease in seconds (the service may grant less)")
    once: bool = Field(False, description="vend and publish one set, then exit (init containers, Jobs)")
    once_timeout: float = Field(60.0, gt=0, le=3600, description="with --once, give up with exit 4 after this many seconds")
    timeout: float = Field(10.0, gt=0, le=60, description="connect and read timeout for the vending service, seconds each")
    ca_file: Path | None = Field(None, description="CA bundle to verify the vending service (default: certifi's roots)")
    client_cert: Path | None = Field(None, description="client certificate (PEM) for mTLS to the vending service")
    client_key: Path | None = Field(None, description="client private key (PEM) for --client-cert")
    file_mode: str = Field("0440", description="octal mode of the published files")

    @field_validator("actions", mode="before")
    @classmethod
    def _split_actions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"give at least one of {','.join(ACTIONS)}")
            return tuple(dict.fromkeys(value))
        return value

    @field_validator("file_mode")
    @classmethod
    def _check_mode(cls, value: str) -> str:
        try:
            mode = int(value, 8)
        except ValueError:
            raise ValueError(f"must be an octal mode such as 0440, got {value!r}") from None
        if not 0 <= mode <= 0o777 or not mode & 0o400:
            raise ValueError("must be an octal mode within 0777 that lets the owner read (e.g. 0440)")
        return value

    @field_validator("vendor_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_vendor_url(value.strip())
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, value: str | None) -> str | None:
        if value is not None and not _BUCKET_RE.fullmatch(value):
            raise ValueError("must be an S3 bucket name (3-63 lowercase letters, digits, '-' or '.')")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if value.startswith("/") or any(not ch.isprintable() for ch in value) or len(value) > 1024:
            raise ValueError("must be a relative key prefix such as 'tenant-a/' (no leading '/', printable)")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> RunSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("--client-cert and --client-key (VEND_SIDECAR_CLIENT_CERT/_KEY) go together")
        return self

    @property
    def file_mode_int(self) -> int:
        return int(self.file_mode, 8)

    def require_vendor(self) -> None:
        """The checks that only a run against a vending service needs."""
        if self.vendor_url is None:
            raise ConfigError(
                "no vending service configured: pass --vendor-url https://vend.example/ "
                "or set VEND_SIDECAR_VENDOR_URL (try 'vend-sidecar dev' for a local sandbox)"
            )
        if self.bucket is None:
            raise ConfigError("no bucket configured: pass --bucket NAME or set VEND_SIDECAR_BUCKET")


def _describe(model: type[BaseSettings], error: dict[str, Any]) -> str:
    loc = [part for part in error.get("loc", ()) if isinstance(part, str)]
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if not loc:
        return message
    name = loc[0]
    if name in model.model_fields:
        if error.get("type") == "missing":
            message = "required; " + (model.model_fields[name].description or "no default")
        return f"{flag_name(name)} / {env_name(name)}: {message}"
    return f"{name}: {message}"


def load(model: type[S], argv: Sequence[str]) -> S:
    """Parse argv (flags) over the environment into ``model``; ConfigError on failure."""
    try:
        return CliApp.run(model, cli_args=list(argv))
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(model, e) for e in exc.errors(include_input=False))) from None
    except SettingsError as exc:
        raise ConfigError(str(exc).replace("\n", " ")) from None
