"""YAML files that remember where each key was, so every problem reads `path:line: message`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError

Loc = tuple[Any, ...]


class Strict(BaseModel):
    """Base of every YAML-facing model: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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

    def validate(self, model: type[BaseModel], data: Any = None) -> tuple[Any, list[str]]:
        """Validate the document (or `data`) with a pydantic model; (model or None, problems)."""
        try:
            return model.model_validate(self.data if data is None else data), []
        except ValidationError as exc:
            return None, [self.problem(err["loc"], _message(err)) for err in exc.errors()]


def _message(err: dict) -> str:
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    field = loc[-1] if loc else "document"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{field}' (check its spelling)"
    if err["type"] == "missing":
        return f"missing required key '{field}'"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{field}: {msg}" if loc else msg


def load(path: Path) -> YamlDoc:
    """Parse a YAML file; raise ConfigError naming the file and line if it is not valid YAML."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}:1: cannot read file ({exc.strerror})"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{path}:{line}: invalid YAML: {exc.problem or exc}"]) from None
    lines: dict[Loc, int] = {}
    problems: list[str] = []
    data = _build(node, (), lines, problems, path) if node is not None else None
    if problems:
        raise ConfigError(problems)
    return YamlDoc(path, data, lines)


def _build(node: yaml.Node, loc: Loc, lines: dict, problems: list, path: Path) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _SCALARS.construct_object(key_node, deep=True)
            if key in out:
                problems.append(f"{path}:{key_node.start_mark.line + 1}: duplicate key '{key}'")
            lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, loc + (key,), lines, problems, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, loc + (i,), lines, problems, path) for i, item in enumerate(node.value)]
    return _SCALARS.construct_object(node, deep=True)


_SCALARS = yaml.SafeLoader("")  # YAML's own rules for scalars: "1", "yes", "null", dates
