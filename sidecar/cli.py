"""Command line: ``vend-sidecar [COMMAND] [flags]``.

Commands are dispatched on the first argument; ``run`` is the default, so
``vend-sidecar --out ./creds`` works. Exit codes (also in the README):

==  =======================================================================
0   success, or a clean stop on SIGTERM/SIGINT (the published set stays)
1   ``check`` / ``credential-process``: nothing valid is published
2   configuration error (one line names the flag and the variable)
3   ``--once``: permanent refusal (400, 401, 403)
4   ``--once``: no credentials before the deadline (transient failures)
==  =======================================================================
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from . import __version__
from .errors import AuthRejected, ConfigError, DeadlineExceeded, Denied, PublishError
from .logs import configure, event
from .settings import RunSettings, load

if TYPE_CHECKING:
    from .loop import Exchanger

__all__ = ["EXIT_CONFIG", "EXIT_DEADLINE", "EXIT_NOT_READY", "EXIT_OK", "EXIT_REFUSED", "main"]

EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_CONFIG = 2
EXIT_REFUSED = 3
EXIT_DEADLINE = 4


def _wants_json(argv: Sequence[str]) -> bool:
    """Best-effort guess of --log-format before the settings parse (for its errors)."""
    for i, arg in enumerate(argv):
        if arg == "--log-format" and i + 1 < len(argv):
            return argv[i + 1].lower() == "json"
        if arg.startswith("--log-format="):
            return arg.split("=", 1)[1].lower() == "json"
    return os.environ.get("VEND_SIDECAR_LOG_FORMAT", "").lower() == "json"


def fail(message: str, argv: Sequence[str], code: int = EXIT_CONFIG) -> int:
    """Print one line to stderr (JSON when asked) and return the exit code."""
    if _wants_json(argv):
        print(json.dumps({"level": "error", "event": "config.invalid", "error": message}), file=sys.stderr)
    else:
        print(f"vend-sidecar: error: {message}", file=sys.stderr)
    return code


async def stop_on_signals(scope: anyio.CancelScope, on_signal: Callable[[], None]) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            event(logging.INFO, "shutdown", signal=signal.Signals(signum).name)
            on_signal()
            scope.cancel()
            return


# -- exchange: the vending service (production) or direct STS (sandbox only) --------


def _exchanger(settings: RunSettings) -> Exchanger:
    """The object the loop asks for credentials: ``url``, ``vend()``, ``aclose()``."""
    if settings.exchange == "sts":
        import importlib.util

        if importlib.util.find_spec("aiobotocore") is None:
            raise ConfigError("--exchange sts needs aiobotocore: pip install 'vend-sidecar[sts]'")
        from .sts import StsExchanger

        event(
            logging.WARNING,
            "exchange.sts",
            note="direct STS exchange is for sandboxes only; in production the vending service decides",
            sts_endpoint=settings.sts_endpoint,
            role_arn=settings.role_arn,
        )
        return StsExchanger(
            sts_endpoint=settings.sts_endpoint or "",
            role_arn=settings.role_arn or "",
            ttl_seconds=settings.ttl,
            timeout=settings.timeout,
            bucket=settings.bucket,
            prefix=settings.prefix,
            actions=settings.actions,
            ca_file=settings.ca_file,
        )
    from .vendor import VendorClient, build_http_client

    http = build_http_client(
        timeout=settings.timeout,
        ca_file=settings.ca_file,
        client_cert=settings.client_cert,
        client_key=settings.client_key,
    )
    return VendorClient(
        vendor_url=settings.vendor_url or "",
        bucket=settings.bucket or "",
        prefix=settings.prefix,
        actions=settings.actions,
        ttl_seconds=settings.ttl,
        http=http,
    )


async def _run(settings: RunSettings) -> int:
    from .loop import RefreshLoop
    from .publish import Publisher

    settings.require_vendor()
    # -- operations endpoints (health/metrics, container credentials): only when asked
    endpoints = None
    if settings.health_addr is not None or settings.serve_container_credentials is not None:
        from .endpoints import Endpoints

        endpoints = Endpoints(settings)
    rng = random.Random()
    vendor = _exchanger(settings)
    try:
        loop = RefreshLoop(
            token_file=settings.token_file,
            vendor=vendor,
            publisher=Publisher(settings.out, file_mode=settings.file_mode_int, rng=rng),
            audience=settings.audience,
            rng=rng,
            once=settings.once,
            once_timeout=settings.once_timeout,
            observer=endpoints.observer if endpoints is not None else None,
        )
        event(
            logging.INFO,
            "start",
            version=__version__,
            mode="once" if settings.once else "daemon",
            exchange=settings.exchange,
            vendor_url=settings.vendor_url,
            sts_endpoint=settings.sts_endpoint,
            out=str(settings.out),
            token_file=str(settings.token_file),
            bucket=settings.bucket,
            prefix=settings.prefix,
            actions=",".join(settings.actions),
            ttl=settings.ttl,
        )
        code = EXIT_OK
        if endpoints is not None:
            endpoints.start(loop.status)  # binds now: exit 2 if a port is taken
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_on_signals, tg.cancel_scope, loop.stop)
            if endpoints is not None:
                tg.start_soon(endpoints.run_until_cancelled)  # heartbeat; closes the ports
            try:
                await loop.run()
            except (Denied, AuthRejected) as exc:
                code = EXIT_REFUSED
                event(logging.ERROR, "exit", code=code, reason=str(exc))
            except DeadlineExceeded as exc:
                code = EXIT_DEADLINE
                event(logging.ERROR, "exit", code=code, reason=str(exc))
            except PublishError as exc:
                # prepare() refused OUT at start-up (a symlink, not a directory, not
                # creatable): a configuration problem, one line, exit 2.
                code = EXIT_CONFIG
                event(logging.ERROR, "exit", code=code, reason=str(exc))
            tg.cancel_scope.cancel()
    finally:
        await vendor.aclose()
    if code == EXIT_OK:
        event(logging.INFO, "exit", code=EXIT_OK)
    return code


def cmd_run(argv: Sequence[str]) -> int:
    settings = load(RunSettings, argv)
    configure(fmt=settings.log_format, level=settings.log_level)
    return anyio.run(_run, settings)


def _lazy(target: str) -> Callable[[Sequence[str]], int]:
    """A command whose module is imported only when it runs (keeps start-up lean)."""

    def command(argv: Sequence[str]) -> int:
        import importlib

        module_name, _, function = target.partition(":")
        return getattr(importlib.import_module(module_name), function)(argv)

    return command


#: Subcommands: name -> handler(argv) -> exit code. ``run`` is the default.
COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "run": cmd_run,
    "check": _lazy("sidecar.inspect:cmd_check"),
    "credential-process": _lazy("sidecar.inspect:cmd_credential_process"),
    "dev": _lazy("sidecar.dev.cli:cmd_dev"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("--version", "-V"):
        print(f"vend-sidecar {__version__}")
        return EXIT_OK
    command = "run"
    if args and args[0] in COMMANDS:
        command = args.pop(0)
    elif args and not args[0].startswith("-"):
        return fail(f"unknown command {args[0]!r}; commands: {', '.join(COMMANDS)}", args)
    try:
        return COMMANDS[command](args)
    except ConfigError as exc:
        return fail(str(exc), args)
    except PublishError as exc:
        return fail(str(exc), args, EXIT_CONFIG)
    except KeyboardInterrupt:
        return EXIT_OK
