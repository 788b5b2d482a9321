"""Strict records: the typed, checked shape of canary.yaml and of the suite files.

A record class declares its fields as annotations, each with a default or a `Field(...)`
(default, alias, bounds). Building one from YAML data reads every field, reports every
problem with where it is (`Invalid.problems`, which yamlfile turns into `path:line:
message`), and refuses any key it does not declare: a misspelt key is an error, never
ignored. Values are read as pydantic's lax mode reads them (a quoted "5" is a number where
one is due, 1 or "yes" a boolean), with its messages: canary used pydantic here, and
importing it with these schemas cost every command about 80 ms of its start. `dump` is the
record as JSON-ready data, as pydantic dumped it (a suite's version hashes it).
"""
from __future__ import annotations

import math
import re
import types
import typing
from datetime import date, datetime, time, timedelta
from typing import Any, Callable, Literal, NamedTuple, Union

MISSING = object()
_BAD = object()  # what a reader returns for a value it reported as a problem


class Field:
    """A field's default (or default_factory), its key in the file if not its name (alias),
    and its bounds: ge/gt/le/lt for numbers, a pattern for text, min_length for lists."""

    __slots__ = ("default", "default_factory", "alias", "ge", "gt", "le", "lt", "pattern", "min_length")

    def __init__(self, default: Any = MISSING, *, default_factory: Callable[[], Any] | None = None,
                 alias: str | None = None, ge=None, gt=None, le=None, lt=None, pattern: str | None = None,
                 min_length: int | None = None):
        self.default, self.default_factory, self.alias = default, default_factory, alias
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt
        self.pattern, self.min_length = pattern, min_length


class Problem(NamedTuple):
    loc: tuple  # keys and list indexes from the record's top
    kind: str  # "missing", "unknown" (a key the record does not declare) or "value"
    message: str


class Invalid(ValueError):
    """Every problem found building a record."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc)) or 'record'}: {p.message}" for p in problems))


class _Check(NamedTuple):
    fn: Callable
    fields: tuple[str, ...]  # () for a check of the whole record
    before: bool  # runs on the raw value, before it is read as its type


def field_check(*fields: str, before: bool = False) -> Callable[[Callable], _Check]:
    """A function of a field's value returning the value to keep; a ValueError is the problem.
    `before`: it gets the value as written, before it is read as the field's type."""
    return lambda fn: _Check(fn, fields, before)


def record_check(fn: Callable) -> _Check:
    """A method run once every field is good (it may complete the record); a ValueError is the
    problem, reported at the record."""
    return _Check(fn, (), False)


class _Spec(NamedTuple):
    name: str
    key: str  # its key in the file (the alias, if any)
    read: Callable  # (value, loc, problems) -> value or _BAD
    default: Any
    factory: Callable | None
    before: tuple[Callable, ...]
    after: tuple[Callable, ...]
    free: bool  # holds Any: dumped by inferring each value's type


class Strict:
    """Base of every YAML-facing record. `Record(**values)` reads them as from a file and
    raises Invalid with every problem."""

    def __init__(self, **values: Any):
        problems: list[Problem] = []
        self.__class__._read(values, (), problems, into=self)
        if problems:
            raise Invalid(problems)

    @classmethod
    def parse(cls, data: Any) -> tuple[Any, list[Problem]]:
        """(the record or None, problems) from data read from a file."""
        problems: list[Problem] = []
        record = cls._read(data, (), problems)
        return (None if problems else record), problems

    @classmethod
    def _read(cls, data: Any, loc: tuple, problems: list[Problem], into: Strict | None = None) -> Any:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            problems.append(Problem(loc, "value", f"Input should be a valid dictionary or instance of {cls.__name__}"))
            return _BAD
        specs = cls._fields()
        found = len(problems)
        values, used = {}, set()
        for s in specs:
            key = s.key if s.key in data else s.name if s.name in data else None
            if key is None:
                if s.default is MISSING and s.factory is None:
                    problems.append(Problem(loc + (s.key,), "missing", "Field required"))
                else:
                    values[s.name] = s.factory() if s.factory else s.default
                continue
            used.add(key)
            value = _checked(s.before, data[key], loc + (key,), problems)
            if value is not _BAD:
                value = s.read(value, loc + (key,), problems)
            if value is not _BAD:
                value = _checked(s.after, value, loc + (key,), problems)
            values[s.name] = value
        problems += [Problem(loc + (k,), "unknown", "Extra inputs are not permitted") for k in data if k not in used]
        if len(problems) > found:
            return _BAD
        record = into if into is not None else cls.__new__(cls)
        record.__dict__.update(values)
        for check in cls._record_checks:
            try:
                check.fn(record)
            except ValueError as exc:
                problems.append(Problem(loc, "value", str(exc)))
                return _BAD
        return record

    @classmethod
    def _fields(cls) -> list[_Spec]:
        """The fields' readers, from the annotations (resolved once, at the first record read)."""
        if "_specs" in cls.__dict__:  # this class's own, not a base's
            return cls._specs
        hints = typing.get_type_hints(cls)
        checks = [v for k in reversed(cls.__mro__) for v in vars(k).values() if isinstance(v, _Check)]
        specs = []
        for name, hint in hints.items():
            if name.startswith("_") or typing.get_origin(hint) is typing.ClassVar:
                continue
            declared = getattr(cls, name, MISSING)
            spec = declared if isinstance(declared, Field) else Field(declared)
            if isinstance(spec.default, (list, dict, set)):
                raise TypeError(f"{cls.__name__}.{name}: a mutable default would be shared; use default_factory")
            specs.append(_Spec(
                name, spec.alias or name, _bounded(_reader(hint), spec), spec.default, spec.default_factory,
                tuple(c.fn for c in checks if name in c.fields and c.before),
                tuple(c.fn for c in checks if name in c.fields and not c.before), _free(hint)))
        cls._record_checks = [c for c in checks if not c.fields]
        cls._names = frozenset(s.name for s in specs)
        cls._specs = specs
        return specs

    @classmethod
    def _field_names(cls) -> frozenset[str]:
        cls._fields()
        return cls._names

    def __setattr__(self, name: str, value: Any) -> None:
        """A declared field, or a private attribute (`_path`): a misspelt name is an error."""
        if not name.startswith("_") and name not in type(self)._field_names():
            raise AttributeError(f"{type(self).__name__} has no field '{name}'")
        object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> Strict:
        """A copy with some fields changed (not read again)."""
        if unknown := set(changes) - type(self)._field_names():
            raise AttributeError(f"{type(self).__name__} has no field '{sorted(unknown)[0]}'")
        copy = self.__class__.__new__(self.__class__)
        copy.__dict__.update(self.__dict__, **changes)
        return copy

    def fields(self) -> dict[str, Any]:
        """The declared fields' values, by name."""
        return {s.name: getattr(self, s.name) for s in self._fields()}

    def dump(self) -> dict[str, Any]:
        """JSON-ready data, keys as written in a file (aliases), as pydantic's
        `model_dump(mode="json", by_alias=True)` gave it."""
        return {s.key: _dumped(getattr(self, s.name), s.free) for s in self._fields()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.fields() == self.fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.fields().items())})"


def _checked(fns: tuple[Callable, ...], value: Any, loc: tuple, problems: list[Problem]) -> Any:
    try:
        for fn in fns:
            value = fn(value)
    except ValueError as exc:
        problems.append(Problem(loc, "value", str(exc)))
        return _BAD
    return value


# --- readers: (value, loc, problems) -> the value as its type, or _BAD with a problem -------

def _reader(hint: Any) -> Callable:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return lambda v, loc, problems: v
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1 or len(args) != 2:
            raise TypeError(f"only `X | None` unions are supported, not {hint}")
        read = _reader(inner[0])
        return lambda v, loc, problems: None if v is None else read(v, loc, problems)
    if origin is Literal:
        return _literal(args)
    if origin is list:
        return _list(_reader(args[0]))
    if origin is dict:
        return _dict(_reader(args[0]), _reader(args[1]))
    if isinstance(hint, type) and issubclass(hint, Strict):
        return hint._read
    simple = _SIMPLE.get(hint)
    if simple is None:
        raise TypeError(f"no reader for {hint}")
    return _simple(*simple)


def _simple(convert: Callable[[Any], Any], what: str) -> Callable:
    def read(v, loc, problems):
        try:
            return convert(v)
        except _Wrong as exc:
            problems.append(Problem(loc, "value", exc.whole or f"Input should be {what}{exc.detail}"))
            return _BAD
    return read


class _Wrong(Exception):
    """A value its type cannot take: `detail` ends the message ("Input should be a valid
    integer, ..."), or `whole` replaces it."""

    def __init__(self, detail: str = "", whole: str | None = None):
        self.detail, self.whole = detail, whole


def _text(v: bytes) -> str:
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        raise _Wrong(", unable to parse raw data as a unicode string") from None


def _str(v):
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return _text(v)
    raise _Wrong


_INT_TEXT = re.compile(r"\s*([+-]?[0-9][0-9_]*)(?:\.0+)?\s*", re.ASCII)  # "5", " +1_000 ", "5.00"; not "1e6"


def _int(v):
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _Wrong(whole="Input should be a finite number")
        if not v.is_integer():
            raise _Wrong(", got a number with a fractional part")
        if abs(v) >= 2.0 ** 63:
            raise _Wrong(whole="Unable to parse input string as an integer, exceeded maximum size")
        return int(v)
    if isinstance(v, (str, bytes)):
        m = _INT_TEXT.fullmatch(_text(v) if isinstance(v, bytes) else v)
        try:
            return int(m.group(1)) if m else int("not a number")
        except ValueError:
            raise _Wrong(", unable to parse string as an integer") from None
    raise _Wrong


def _float(v):
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, (str, bytes)):
        text = _text(v) if isinstance(v, bytes) else v
        try:
            if not text.isascii():  # Python's float() reads other scripts' digits; pydantic does not
                raise ValueError
            return float(text)
        except ValueError:
            raise _Wrong(", unable to parse string as a number") from None
    raise _Wrong


_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def _bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, bytes):
        v = _text(v)
    if isinstance(v, str) and v.lower() in _TRUE | _FALSE:
        return v.lower() in _TRUE
    unreadable = isinstance(v, (int, str)) or (isinstance(v, float) and v.is_integer())
    raise _Wrong(", unable to interpret input" if unreadable else "")


def _timedelta(v):
    if isinstance(v, timedelta):
        return v
    raise _Wrong


_SIMPLE = {str: (_str, "a valid string"), int: (_int, "a valid integer"), float: (_float, "a valid number"),
           bool: (_bool, "a valid boolean"), timedelta: (_timedelta, "a valid timedelta")}


def _literal(choices: tuple) -> Callable:
    words = [repr(c) for c in choices]
    expected = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"

    def read(v, loc, problems):
        if any(v == c and type(v) is type(c) for c in choices):
            return v
        problems.append(Problem(loc, "value", f"Input should be {expected}"))
        return _BAD
    return read


def _list(item: Callable) -> Callable:
    def read(v, loc, problems):
        if not isinstance(v, (list, tuple, set, frozenset)):
            problems.append(Problem(loc, "value", "Input should be a valid list"))
            return _BAD
        out = [item(x, loc + (i,), problems) for i, x in enumerate(v)]
        return _BAD if any(x is _BAD for x in out) else out
    return read


def _dict(key: Callable, value: Callable) -> Callable:
    def read(v, loc, problems):
        if not isinstance(v, dict):
            problems.append(Problem(loc, "value", "Input should be a valid dictionary"))
            return _BAD
        out, bad = {}, False
        for k, x in v.items():
            k, x = key(k, loc + (k, "[key]"), problems), value(x, loc + (k,), problems)
            bad = bad or k is _BAD or x is _BAD
            out[k] = x
        return _BAD if bad else out
    return read


def _bounded(read: Callable, spec: Field) -> Callable:
    """The reader, then the field's bounds on what it read (None passes: an optional field)."""
    limits = [(op, bound, words) for op, bound, words in (  # the upper bounds first, as pydantic (for a NaN)
        (lambda a, b: a <= b, spec.le, "less than or equal to"), (lambda a, b: a < b, spec.lt, "less than"),
        (lambda a, b: a >= b, spec.ge, "greater than or equal to"), (lambda a, b: a > b, spec.gt, "greater than"))
        if bound is not None]
    pattern = _pattern(spec.pattern) if spec.pattern is not None else None
    if not limits and pattern is None and spec.min_length is None:
        return read

    def bounded(v, loc, problems):
        v = read(v, loc, problems)
        if v is _BAD or v is None:
            return v
        for op, bound, words in limits:
            if not op(v, bound):
                problems.append(Problem(loc, "value", f"Input should be {words} {bound}"))
                return _BAD
        if pattern is not None and not pattern.search(v):
            problems.append(Problem(loc, "value", f"String should match pattern '{spec.pattern}'"))
            return _BAD
        if spec.min_length is not None and len(v) < spec.min_length:
            n = spec.min_length
            problems.append(Problem(loc, "value", f"List should have at least {n} item{'s' if n != 1 else ''} "
                                                  f"after validation, not {len(v)}"))
            return _BAD
        return v
    return bounded


def _pattern(text: str) -> re.Pattern:
    """A field's pattern as pydantic's (Rust's) regex reads it: a final `$` matches only at the
    very end of the text (Python's `$` would also match before a final newline: "gpt\\n")."""
    if text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1] + r"\Z"
    return re.compile(text)


# --- dumping ------------------------------------------------------------------------------

def _free(hint: Any) -> bool:
    """Whether a field's values are dumped by inferring their type (Any, or a dict of Any)."""
    return hint is Any or any(_free(a) for a in typing.get_args(hint))


def _dumped(value: Any, free: bool) -> Any:
    if isinstance(value, Strict):
        return value.dump()
    if isinstance(value, list):
        return [_dumped(v, free) for v in value]
    return _json(value) if free else value


def _json(v: Any) -> Any:
    """A value of an Any field as pydantic's JSON mode infers it (a non-finite float is null)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {_json_key(k): _json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_json(x) for x in v]
    if isinstance(v, (datetime, date, time)):
        return _iso(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")  # (pydantic raised on bytes that are not UTF-8)
    if isinstance(v, Strict):
        return v.dump()
    return str(v)


def _json_key(k: Any) -> str:
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, float) and not math.isfinite(k):
        return "None"
    if isinstance(k, bytes):
        return k.decode("utf-8", errors="replace")
    if isinstance(k, (datetime, date, time)):
        return _iso(k)
    return str(k)


def _iso(v: datetime | date | time) -> str:
    text = v.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

