"""Logging for the daemon: human-readable lines or JSON objects, never a secret.

`setup_logging` installs one stderr handler on the root logger (systemd's journal and
Docker read stderr). Its `RedactSecrets` filter replaces every value of the secret
environment variables the config names (API keys, the Slack webhook or token) and the
database password with `***` in the message, its arguments and any traceback, so a secret
that reaches a log call by accident (an SDK error echoing a header, a URL) never gets out.
"""
from __future__ import annotations

import json
import logging
import re
import os
import sys
from datetime import datetime, timezone
from typing import IO, Iterable, Mapping

REDACTED = "***"
MIN_SECRET_LENGTH = 6  # shorter values would blank out ordinary words
HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# attributes every LogRecord has; anything else was passed with `extra=` and goes into JSON
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def secret_looking_envs(env=os.environ) -> list[str]:
    """Environment variables whose names say they hold a secret (for commands with no config yet)."""
    return [k for k in env if re.search(r"KEY|TOKEN|SECRET|PASSWORD|WEBHOOK", k, re.I)]


def secret_env_names(config) -> list[str]:
    """The environment variables a config names as holding secrets."""
    names = {m.key_env for m in config.models}
    slack = config.alerts.slack
    if slack is not None:
        names.update(n for n in (slack.webhook_url_env, slack.token_env) if n)
    return sorted(names)


def _database_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).password
    except Exception:  # not a URL SQLAlchemy understands: nothing to hide in it
        return None


class RedactSecrets(logging.Filter):
    """Replaces the values of the named environment variables (read at `update`) with ***."""

    def __init__(self, names: Iterable[str] = (), env: Mapping[str, str] = os.environ):
        super().__init__()
        self.env = env
        self.secrets: list[str] = []
        self.update(names)

    def update(self, names: Iterable[str], database_url: str | None = None, also: Iterable[str] = ()) -> None:
        values = {self.env.get(n) or "" for n in names}
        values.add(_database_password(database_url or self.env.get("CANARY_DATABASE_URL")) or "")
        values |= {_database_password(url) or "" for url in also}
        # longest first, so a secret that contains another is replaced whole
        self.secrets = sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
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
