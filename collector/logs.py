"""Logging: readable text on a terminal, one JSON object per line under systemd or on request.

Every record passes through a filter that blanks the configured secrets, so a token can never
reach a log line, whatever a marketplace echoes back.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

LOGGER_NAME = "mp"


class SecretFilter(logging.Filter):
    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = ()
            fields = getattr(record, "fields", None)
            if fields:
                record.fields = {k: self.scrub(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("event",) and v not in (None, ""))
        line = f"{record.levelname:<7} {record.getMessage()}" + (f"  [{extra}]" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def under_systemd() -> bool:
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))


def configure(log_format: str = "auto", level: str = "INFO", secrets: tuple[str, ...] = ()) -> logging.Logger:
    """Set up the `mp` logger once per process; calling again replaces its handler."""
    if log_format == "auto":
        log_format = "json" if under_systemd() else "text"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(SecretFilter(secrets))
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def event(level: int, message: str, **fields) -> None:
    get_logger().log(level, message, extra={"fields": fields})
