"""Logging for the daemon: human-readable lines or JSON objects, never a secret.

`setup_logging` installs one stderr handler on the root logger (systemd's journal and
Docker read stderr). Its `RedactSecrets` filter passes the message, its arguments and any
traceback through canary's one redaction (redact.py): the values of the secret environment
variables the config names (API keys, the Slack webhook or token), the database password,
and anything shaped like a key, so a secret that reaches a log call by accident (an SDK
error echoing a header, a URL) never gets out.
"""
from __future__ import annotations

import json
import logging
import re
import os
import sys
from datetime import datetime, timezone
from typing import IO, Iterable, Mapping

from . import redact

HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# attributes every LogRecord has; anything else was passed with `extra=` and goes into JSON
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def secret_looking_envs(env=os.environ) -> list[str]:
    """Environment variables whose names say they hold a secret (for commands with no config yet)."""
    return [k for k in env if re.search(r"KEY|TOKEN|SECRET|PASSWORD|WEBHOOK", k, re.I)]


class RedactSecrets(logging.Filter):
    """Redacts every record (redact.py); `update` adds the values of the named environment
    variables and the database passwords to what is hidden."""

    def __init__(self, names: Iterable[str] = (), env: Mapping[str, str] = os.environ):
        super().__init__()
        self.env = env
        self.update(names)

    def update(self, names: Iterable[str], database_url: str | None = None, also: Iterable[str] = ()) -> None:
        urls = [database_url or self.env.get("CANARY_DATABASE_URL"), *also]
        redact.remember([self.env.get(n) for n in names] + [redact.database_password(u) for u in urls])

    def redact(self, text: str) -> str:
        return redact.REDACTOR.text(text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC), level, logger, msg, any `extra=` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(fmt: str = "human", *, level: int = logging.INFO, secret_envs: Iterable[str] = (),
                  stream: IO[str] | None = None) -> RedactSecrets:
    """Send every log line to stderr (or `stream`) in `fmt` (human | json); returns the redactor."""
    if fmt not in ("human", "json"):
        raise ValueError(f"unknown log format '{fmt}' (human or json)")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(HUMAN_FORMAT))
    redactor = RedactSecrets(secret_envs)
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_canary", False)]:
        root.removeHandler(old)
    handler._canary = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # canary's own lines at `level`; libraries only when they warn (an INFO line per HTTP
    # request or scheduler wakeup is noise)
    root.setLevel(max(level, logging.WARNING))
    logging.getLogger("canary").setLevel(level)
    return redactor
