"""Secrets never leave canary: the one redaction that the store, the exporter, the logs and
the alert messages all apply to what they write.

Two kinds of secret are replaced with `***`:
- values canary was told about, registered with `remember`: the values of the environment
  variables the config names (API keys, the Slack webhook or token) and the database
  password. They are remembered for the life of the process, across config reloads.
- anything shaped like a credential, told about or not, since an API may echo a key canary
  never saw: `sk-...` and `sk-ant-...` API keys, `Bearer ...` tokens, the value after
  `x-api-key:` / `api_key=` / `Authorization:`, Slack webhook URLs, Slack `xox.-` tokens,
  and the password in a `scheme://user:password@host` URL.
Every pattern runs in linear time, so redacting a 200,000-character reply costs milliseconds.
"""
from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Iterable, Mapping
from urllib.parse import unquote

REDACTED = "***"
MIN_SECRET_LENGTH = 6  # shorter values would blank out ordinary words

_TOKEN = r"[A-Za-z0-9._~+/=-]"
# (pattern, replacement): the replacement keeps what says what the secret was
_SHAPES = [
    (re.compile(r"(?<![A-Za-z0-9])sk-(?:ant-)?[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(rf"(?i)\b(bearer\s+){_TOKEN}{{12,}}"), rf"\g<1>{REDACTED}"),
    (re.compile(r"""(?i)\b((?:x-api-key|api[_-]?key|authorization)["']?\s*[:=]\s*["']?)(?!\*\*\*)(?:bearer\s+)?[^\s"',;]{8,}"""),
     rf"\g<1>{REDACTED}"),
    (re.compile(r"https://hooks\.slack\.com/[A-Za-z0-9/_-]+"), f"https://hooks.slack.com/{REDACTED}"),
    (re.compile(r"\bxox[abeoprs]-[A-Za-z0-9-]{8,}|\bxapp-[A-Za-z0-9-]{8,}"), REDACTED),
    (re.compile(r"(?<=://)([^/\s:@]{1,200}):[^/\s@]{1,200}@"), rf"\g<1>:{REDACTED}@"),
]
# what every shape contains, lowercased: the shapes look at a text only when one of these is
# in it. Written out as substring tests joined by `or`: three times faster than `any` over a
# tuple of them, and twice as fast as one regex alternation on a reply's length, which export
# and import feel (a few texts a sample). The case-insensitive shapes also match "ı" and "İ"
# for "i", which lowercase to something else ("ı", "i" + U+0307): a text with either always
# gets the shapes' look.


def _hinted(text: str) -> bool:
    t = text.lower()
    return ("sk-" in t or "bearer" in t or "api_key" in t or "api-key" in t or "apikey" in t or "authorization" in t
            or "hooks.slack.com" in t or "xox" in t or "xapp-" in t or "://" in t
            or (not t.isascii() and ("ı" in t or "\u0307" in t)))


class Redactor:
    """Known secret values plus the credential shapes; `text` hides both."""

    def __init__(self) -> None:
        self._values: tuple[str, ...] = ()
        self._escaped = False  # a value holds a character JSON escapes (a quote, a backslash, ...)
        self._lock = threading.Lock()

    def remember(self, values: Iterable[str | None]) -> None:
        """Hide these values from now on (values shorter than MIN_SECRET_LENGTH are ignored)."""
        with self._lock:
            known = set(self._values) | {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
            # longest first, so a secret that contains another is replaced whole
            # `_escaped` first: a writer thread that sees a new value must see its flag too
            self._escaped = any(json.dumps(v, ensure_ascii=False)[1:-1] != v for v in known)
            self._values = tuple(sorted(known, key=len, reverse=True))

    def text(self, text: str) -> str:
        for secret in self._values:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if _hinted(text):
            for pattern, replacement in _SHAPES:
                text = pattern.sub(replacement, text)
        return text

    def suspect(self, text: str) -> bool:
        """Whether `text` may hold something to hide: a known value or a shape's hint (JSON text
        is then worth parsing and redacting string by string, where escaped quotes cannot hide
        a shape)."""
        return any(secret in text for secret in self._values) or _hinted(text)

    def suspect_json(self, text: str) -> bool:
        """`suspect` for the JSON text of a value (json.dumps, ensure_ascii=False): a hint or a
        known value inside any of its strings is in that text as it is, since JSON escapes no
        character of a hint; only a known value holding a quote, a backslash or a control
        character is not, and then every JSON text is suspect."""
        return self._escaped or self.suspect(text)

    def value(self, value: Any) -> Any:
        """Every string inside a JSON-like value (dicts, lists) redacted; other values as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


REDACTOR = Redactor()  # the process's one redactor: what it hides, everything hides


def remember(values: Iterable[str | None]) -> None:
    REDACTOR.remember(values)


def text(value: str | None) -> str | None:
    return None if value is None else REDACTOR.text(value)


def value(obj: Any) -> Any:
    return REDACTOR.value(obj)


# where a database URL holds its password, read as SQLAlchemy reads it: after the first ":"
# (a user name may hold "@", as Azure's user@server does), up to the next "@" (a password
# may hold "#", "?" or "/" unencoded)
_URL_PASSWORD = re.compile(r"^[\w+]+://[^:/]*:(?P<password>[^@]*)@")


def password_span(url: str) -> tuple[int, int] | None:
    """(start, end) of the password in a database URL, None if it has none."""
    found = _URL_PASSWORD.match(url)
    return found.span("password") if found and found.group("password") else None


def database_password(url: str | None) -> str | None:
    """The password in a database URL, if any, as the driver receives it (percent-decoded)."""
    span = password_span(url) if url else None
    return unquote(url[span[0]:span[1]]) if span else None


def hide_password(url: str) -> str:
    """The URL with its password as ***."""
    span = password_span(url)
    return url if span is None else f"{url[:span[0]]}***{url[span[1]:]}"


def secret_env_names(config) -> list[str]:
    """The environment variables a config names as holding secrets."""
    names = {m.key_env for m in config.models}
    slack = config.alerts.slack
    if slack is not None:
        names.update(n for n in (slack.webhook_url_env, slack.token_env) if n)
    return sorted(names)


def remember_config(config, env: Mapping[str, str] = os.environ) -> None:
    """Hide the values of the variables the config names, and its database password."""
    remember([env.get(name) for name in secret_env_names(config)] + [database_password(config.database_url)])
