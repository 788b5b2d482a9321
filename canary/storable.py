"""A sample as every database holds it: what an API wrote redacted (redact.py), and nothing
the database would refuse (NUL characters, lone surrogates, NaN in JSON, over-long strings)."""
from __future__ import annotations

import json
import math
import re
from typing import Any

from . import redact
from .schema import samples

_TEXTS = ("error_message", "request_id", "reported_model", "finish_reason")  # what an API wrote, with `turns`
_LENGTHS = {c.name: c.type.length for c in samples.columns if getattr(c.type, "length", None)}
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(row: dict, *, json_turns: bool = False) -> dict:
    """A sample as every database holds it: what the API wrote redacted (redact.py), NUL
    characters and lone surrogates (which PostgreSQL and UTF-8 refuse) replaced with U+FFFD,
    NaN and infinities as strings (not JSON), strings clipped to their column's length.
    `json_turns`: `turns` as the JSON text SQLAlchemy's JSON type writes (json.dumps), for an
    insert that binds the values itself (SQLite's), so it is written once, not twice."""
    out = dict.fromkeys(_TEXTS)  # each present, None if left out: an executemany binds the first row's keys
    out.update(row)
    # the texts looked at together first (a hint or a secret in one of them is in the joined
    # text too): most samples have nothing in them to change
    joined = "\n".join(t for t in map(out.get, _TEXTS) if isinstance(t, str))
    if "\x00" in joined or not joined.isascii() or redact.REDACTOR.suspect(joined):
        for key in _TEXTS:
            out[key] = _clean(out.get(key))
    out["turns"] = _clean_json(out.get("turns"), json_turns)
    for key, length in _LENGTHS.items():
        if isinstance(out.get(key), str) and len(out[key]) > length:
            out[key] = out[key][: length - 1] + "…"
    return out


def _clean_json(value: Any, as_text: bool = False) -> Any:
    """`_clean`, with a shortcut for a list or a dict (a sample's turns): written once as JSON
    (C code, a few times quicker than walking it in Python), it is returned as it is when
    that text shows nothing to change: no NaN or infinity (refused), no NUL (escaped as
    \\u0000), no lone surrogate (which UTF-8 refuses), nothing to redact. The text looked
    at holds every character as it is (ensure_ascii=False); for an ASCII value it is the
    text stored, so `as_text` (the value as json.dumps writes it) costs nothing more."""
    if isinstance(value, (dict, list)):
        try:
            text = json.dumps(value, allow_nan=False)  # what SQLAlchemy's JSON type writes
            seen = json.dumps(value, ensure_ascii=False) if "\\u" in text else text
            seen.encode("utf-8")  # a lone surrogate: UnicodeEncodeError, a ValueError
        except (ValueError, TypeError):  # TypeError: not JSON as it is (a tuple as a key, say)
            pass
        else:
            if "\\u0000" not in seen and not redact.REDACTOR.suspect_json(seen):
                return text if as_text else value
    value = _clean(value)
    return json.dumps(value) if as_text else value


def _clean(value: Any) -> Any:
    """`redact.value` and then what the database refuses replaced, in one walk of the value
    (tuples become lists, as JSON has them)."""
    if isinstance(value, str):
        value = redact.REDACTOR.text(value)
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                value = _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
