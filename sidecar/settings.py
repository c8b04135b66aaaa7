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

import ipaddress
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

__all__ = ["CommonSettings", "ENV_PREFIX", "RunSettings", "env_name", "flag_name", "load", "parse_host_port"]

ENV_PREFIX = "VEND_SIDECAR_"
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
Action = Literal["read", "write", "list"]
_ROLE_ARN_RE = re.compile(r"arn:[a-z0-9-]+:iam::[0-9]*:role/[\w+=,.@/-]{1,128}")
S = TypeVar("S", bound="CommonSettings")


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def parse_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port). Port 0 asks the kernel for one
    (the bound port is logged). The host must be given: no implicit all-interfaces."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"must be HOST:PORT such as 0.0.0.0:8081 or [::1]:8081, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"put an IPv6 address in brackets, e.g. [::1]:8081, got {value!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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

    # -- operations: health/metrics server and the AWS container-credentials endpoint --
    health_addr: str | None = Field(None, description="serve /healthz, /readyz and /metrics on HOST:PORT, e.g. 0.0.0.0:8081 (off when not given)")
    min_remaining: float = Field(60.0, ge=0, description="/readyz fails when the published set has this many seconds or fewer left")
    stall_after: float | None = Field(None, gt=0, le=3600, description="/healthz fails when one refresh attempt or the event loop has been stuck this long (default 3 x --timeout + 30 s)")
    serve_container_credentials: str | None = Field(None, description="serve the AWS container-credentials endpoint on a loopback HOST:PORT, e.g. 127.0.0.1:8082")
    container_auth_token_file: Path | None = Field(None, description="file whose content callers must send as Authorization (required with --serve-container-credentials)")

    @field_validator("health_addr")
    @classmethod
    def _check_health_addr(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value)
        return value

    @field_validator("serve_container_credentials")
    @classmethod
    def _check_container_addr(cls, value: str | None) -> str | None:
        if value is not None and not _is_loopback(parse_host_port(value)[0]):
            raise ValueError(
                f"must be a loopback address such as 127.0.0.1:8082 or [::1]:8082, got {value!r}: "
                "the endpoint hands credentials to any caller holding the auth token"
            )
        return value

    @property
    def stall_after_seconds(self) -> float:
        return self.stall_after if self.stall_after is not None else 3 * self.timeout + 30

    # -- direct STS exchange (sandbox only; sidecar/sts.py) ------------------------
    exchange: Literal["vendor", "sts"] = Field(
        "vendor",
        description="vendor: ask the vending service (production); sts: call AssumeRoleWithWebIdentity "
        "directly (sandboxes only, needs the sts extra)",
    )
    sts_endpoint: str | None = Field(None, description="with --exchange sts: STS endpoint URL (https://, or http:// to loopback)")
    role_arn: str | None = Field(None, description="with --exchange sts: the role to assume")

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

    @field_validator("sts_endpoint")
    @classmethod
    def _check_sts_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_vendor_url(value.strip())
        except ConfigError as exc:
            raise ValueError(str(exc).replace("vendor URL", "STS endpoint")) from None

    @field_validator("role_arn")
    @classmethod
    def _check_role_arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN_RE.fullmatch(value.strip()):
            raise ValueError("must be a role ARN such as arn:aws:iam::123456789012:role/NAME or arn:minio:iam:::role/NAME")
        return value.strip() if value is not None else None

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
        if self.serve_container_credentials is not None and self.container_auth_token_file is None:
            raise ValueError(
                "--serve-container-credentials needs --container-auth-token-file "
                "(VEND_SIDECAR_CONTAINER_AUTH_TOKEN_FILE): callers must present its content as Authorization"
            )
        self._check_exchange()
        return self

    def _check_exchange(self) -> None:
        """--exchange sts: its own flags, no silent mixing with the vendor's."""
        if self.exchange == "vendor":
            for name in ("sts_endpoint", "role_arn"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{flag_name(name)} / {env_name(name)} applies only with --exchange sts")
            return
        if self.vendor_url is not None:
            raise ValueError("--vendor-url / VEND_SIDECAR_VENDOR_URL does not apply with --exchange sts; remove one")
        if self.client_cert is not None:
            raise ValueError("--client-cert is not supported with --exchange sts")
        if not 900 <= self.ttl <= 43200:
            raise ValueError("--ttl / VEND_SIDECAR_TTL must be 900..43200 with --exchange sts (STS DurationSeconds)")

    @property
    def file_mode_int(self) -> int:
        return int(self.file_mode, 8)

    def require_vendor(self) -> None:
        """The checks that only a run against a vending service needs."""
        if self.exchange == "sts":
            for name, example in (("sts_endpoint", "https://minio.example:9000"), ("role_arn", "arn:minio:iam:::role/NAME")):
                if getattr(self, name) is None:
                    raise ConfigError(f"--exchange sts needs {flag_name(name)} {example} (or {env_name(name)})")
            return
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
