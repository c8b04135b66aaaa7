"""Structured logs: one event per line, text for people or JSON for machines.

Every record has a stable event name (``vend.success``, ``vend.failure``,
``publish``, ``token.rotated``, ...) and flat fields. Callers pass only non-secret
fields; secrets are ``SecretStr`` everywhere and the formatter renders any
``SecretStr`` that slips into a field as ``**********``. Logs go to stderr so that
stdout stays free for ``credential-process`` JSON.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

__all__ = ["configure", "event", "get_logger"]

_LOGGER_NAME = "vend_sidecar"
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def get_logger() -> logging.Logger:
    return logging.getLogger(_LOGGER_NAME)


def event(level: int, name: str, /, **fields: Any) -> None:
    """Log one event with flat, non-secret fields; ``None`` values are dropped."""
    logger = get_logger()
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": {k: v for k, v in fields.items() if v is not None}})


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", {}) or {})
    for key, value in record.__dict__.items():  # extras from foreign loggers
        if key not in _RESERVED and key != "fields":
            fields.setdefault(key, value)
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        fields.setdefault("error", f"{exc.__class__.__name__}: {exc}")
    return {k: _plain(v) for k, v in fields.items()}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``event``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": _timestamp(record), "level": record.levelname.lower(), "event": record.getMessage()}
        if record.name != _LOGGER_NAME:
            doc["logger"] = record.name
        doc.update(_fields(record))
        return json.dumps(doc, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """``TS LEVEL event key=value ...``; values with spaces are JSON-quoted."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.getMessage()]
        for key, value in _fields(record).items():
            text = value if isinstance(value, str) else json.dumps(value)
            if not text or any(c.isspace() or c in '"=' for c in text):
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        return " ".join(parts)


def configure(*, fmt: str = "text", level: str = "info", stream: Any = None) -> None:
    """Install one handler on the root logger; quiet chatty libraries."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    get_logger().setLevel(level.upper())
    logging.captureWarnings(True)
    for noisy in ("httpx", "httpcore", "watchfiles", "botocore", "aiobotocore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
