"""YAML files that remember where each key was, so every problem reads `path:line: message`.

A config or suite file may be broken in hostile ways, and each fails fast with one line:
a file larger than MAX_FILE_BYTES, bytes that are not UTF-8, a binary file, nesting deeper
than MAX_DEPTH, and a document that expands to more than MAX_VALUES values through its
aliases (the "billion laughs" bomb: ten lines that would expand to a billion strings).

Parsing uses libyaml (PyYAML's C loader) when it is there, ten times faster than the pure
Python one (every command reads the suites); libyaml stops nesting at 1,000 levels and the
builder at MAX_DEPTH, so neither recursion can exhaust a stack.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .strict import Problem, Strict

Loc = tuple[Any, ...]

MAX_FILE_BYTES = 1024 * 1024  # 70 times the largest starter suite
MAX_DEPTH = 64  # mappings and lists inside each other (JSON Schemas in suites nest a few levels)
MAX_VALUES = 100_000  # values once aliases are expanded (a starter suite has about 1,500)


class _TooBig(Exception):
    def __init__(self, node: yaml.Node, message: str):
        self.line, self.message = node.start_mark.line + 1, message


class YamlDoc:
    """A parsed YAML file: its data, and the line of every key and list item in it."""

    def __init__(self, path: Path, data: Any, lines: dict[Loc, int]):
        self.path = path
        self.data = data
        self.lines = lines

    def where(self, loc: Loc) -> str:
        """`path:line` of the deepest part of `loc` that exists in the file."""
        loc = tuple(loc)
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return f"{self.path}:{self.lines.get(loc, 1)}"

    def problem(self, loc: Loc, message: str) -> str:
        return f"{self.where(loc)}: {message}"

    def validate(self, record: type[Strict], data: Any = None) -> tuple[Any, list[str]]:
        """Read the document (or `data`) as a record; (the record or None, problems)."""
        value, problems = record.parse(self.data if data is None else data)
        return value, [self.problem(p.loc, _message(p)) for p in problems]


def _message(problem: Problem) -> str:
    loc = [str(p) for p in problem.loc if not isinstance(p, int)]
    field = loc[-1] if loc else "document"
    if problem.kind == "unknown":  # the key itself, whatever its type
        key = problem.loc[-1]
        if isinstance(key, bool):
            return f"a key YAML reads as {str(key).lower()}: on, off, yes and no are booleans in YAML (quote the key)"
        return f"unknown key '{key}' (check its spelling)"
    if problem.kind == "missing":
        return f"missing required key '{field}'"
    return f"{field}: {problem.message}" if loc else problem.message


def load(path: Path) -> YamlDoc:
    """Parse a YAML file; raise ConfigError naming the file and line if it is not valid YAML."""
    path = Path(path)
    text = _read(path)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or str(exc)
        if problem == "exceeded maximum nesting depth":  # libyaml's own limit (1,000 levels)
            problem = f"nested more than {MAX_DEPTH} levels deep"
        raise ConfigError([f"{path}:{line}: invalid YAML: {problem}"]) from None
    except yaml.reader.ReaderError as exc:  # a control character: a binary file, most likely
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError([f"{path}:{line}: not a text file: control character #x{code:02x} "
                           "(is this the right file?)"]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError([f"{path}:1: invalid YAML: {type(exc).__name__}"]) from None
    lines: dict[Loc, int] = {}
    problems: list[str] = []
    try:
        data = _Builder(path, lines, problems).build(node, ()) if node is not None else None
    except _TooBig as exc:
        raise ConfigError([f"{path}:{exc.line}: {exc.message}"]) from None
    if problems:
        raise ConfigError(problems)
    return YamlDoc(path, data, lines)


def _read(path: Path) -> str:
    """The file's text: at most MAX_FILE_BYTES, UTF-8 (a byte-order mark allowed)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}:1: cannot read file ({exc.strerror})"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([f"{path}:1: larger than {MAX_FILE_BYTES // 1024} KiB, the most canary reads "
                           "(is this the right file?)"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                           "save the file as UTF-8"]) from None


class _PyLoader(yaml.SafeLoader):
    """The pure Python safe loader, refusing nesting deeper than MAX_DEPTH before Python's
    stack runs out (used where PyYAML was built without libyaml)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader = getattr(yaml, "CSafeLoader", None) if yaml.__with_libyaml__ else None
_Loader = _Loader or _PyLoader


class _Builder:
    """Plain data from the composed nodes, with the line of every key and list item; counts
    the values it builds, so aliases cannot expand a small file into a huge document."""

    def __init__(self, path: Path, lines: dict, problems: list):
        self.path, self.lines, self.problems = path, lines, problems
        self.values = 0

    def build(self, node: yaml.Node, loc: Loc, depth: int = 0, path: frozenset = frozenset()) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _TooBig(node, f"expands to more than {MAX_VALUES:,} values through its aliases "
                                "(an alias bomb?); canary reads no more")
        if depth >= MAX_DEPTH:  # depth 0 is the document's top level: this node is level MAX_DEPTH + 1
            if id(node) in path:
                raise _TooBig(node, f"nested more than {MAX_DEPTH} levels deep (an alias inside itself?)")
            raise _TooBig(node, f"invalid YAML: nested more than {MAX_DEPTH} levels deep")
        if depth >= MAX_DEPTH - 2:  # near the limit only: what tells a structure from an alias loop
            path = path | {id(node)}
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(f"{self.path}:{line}: a key must be a plain value, not a list or mapping")
                    continue
                key = self.scalar(key_node)
                if key in out:
                    self.problems.append(f"{self.path}:{line}: duplicate key '{key}'")
                self.lines[loc + (key,)] = line
                out[key] = self.build(value_node, loc + (key,), depth + 1, path)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, loc + (i,), depth + 1, path) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        """YAML's own rules for scalars ("1", "yes", "null", dates); a value they refuse is a problem."""
        if node.tag == _STR:  # most values: the text itself (what the constructor would return)
            return node.value
        try:
            return _SCALARS.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            reason = (getattr(exc, "problem", None) or str(exc)).split(";")[0][:100]
            self.problems.append(f"{self.path}:{node.start_mark.line + 1}: cannot read {str(node.value)[:40]!r}: {reason}")
            return None
        finally:  # the constructor remembers every node it built: a daemon reloading for months would keep them all
            _SCALARS.constructed_objects.clear()


_SCALARS = yaml.SafeLoader("")
_STR = "tag:yaml.org,2002:str"
