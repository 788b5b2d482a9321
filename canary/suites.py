"""Suite files (prompts/*.yaml): their schema, loading, validation and content hash."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from . import bounded, checks
from .errors import ConfigError
from .strict import Field, Strict, field_check, record_check
from .yamlfile import YamlDoc, load


class Assertion(Strict):
    """One check of a reply: `type` (any name of the checks registry, optionally `not-`)."""

    type: str
    value: Any = None
    tolerance: float | None = None  # for `number`

    @record_check
    def _known(self) -> None:
        problem = checks.validate(self)
        if problem:
            raise ValueError(problem)


class ToolCallSpec(Strict):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Reference(Strict):
    """The known answer of a turn: the tool calls (by round) and the final text."""

    text: str = ""
    tool_calls: list[ToolCallSpec] = Field(default_factory=list)  # one round (parallel calls)
    rounds: list[list[ToolCallSpec]] = Field(default_factory=list)  # several rounds, in order

    @record_check
    def _one_form(self) -> None:
        if self.tool_calls and self.rounds:
            raise ValueError("give either tool_calls (one round) or rounds, not both")
        if self.tool_calls:
            self.rounds = [self.tool_calls]
            self.tool_calls = []


class AnswerSpec(Strict):
    regex: str

    @field_check("regex")
    def _compiles(value: str) -> str:
        checks.compile_regex(value)
        return value


class Turn(Strict):
    user: str
    asserts: list[Assertion] = Field(default_factory=list, alias="assert")
    reference: Reference | None = None


class Tool(Strict):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})  # a JSON Schema


class CannedResult(Strict):
    when: dict[str, Any]
    result: Any


class Case(Strict):
    id: str
    description: str = ""
    system: str | None = None
    prompt: str | None = None
    turns: list[Turn] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    tool_results: dict[str, Any] = Field(default_factory=dict)
    asserts: list[Assertion] = Field(default_factory=list, alias="assert")
    reference: Reference | None = None
    answer: AnswerSpec | None = None

    @record_check
    def _single_or_multi(self) -> None:
        if (self.prompt is None) == (not self.turns):
            raise ValueError("a case has either `prompt` (single turn) or `turns`, exactly one")
        if self.turns and (self.asserts or self.reference):
            raise ValueError("a multi-turn case puts `assert` and `reference` inside each turn")
        if self.prompt is not None:
            self.turns = [Turn(user=self.prompt, asserts=self.asserts, reference=self.reference)]

    def canned_result(self, name: str, arguments: dict) -> Any:
        """The result fed back for a tool call; an error result for an unknown tool."""
        if name not in self.tools:
            return {"error": f"unknown tool '{name}'"}
        spec = self.tool_results.get(name, {"error": f"no result configured for '{name}'"})
        if isinstance(spec, list) and spec and all(isinstance(s, dict) and "when" in s for s in spec):
            for option in spec:
                if checks.arguments_match(option["when"], arguments)[0]:
                    return option.get("result")
            return {"error": f"no result for {name} with arguments {json.dumps(arguments)}"}
        return spec


class Suite(Strict):
    suite: str
    description: str = ""
    repeat: int = Field(default=1, ge=1, le=100)
    params: dict[str, Any] = Field(default_factory=dict)
    tools: list[Tool] = Field(default_factory=list)
    cases: list[Case] = Field(min_length=1)
    _doc: YamlDoc | None = None  # the file it was read from

    def where(self, loc: tuple) -> str:
        """`path:line` of a part of this suite's file (for problems found after loading)."""
        return self._doc.where(loc) if self._doc else f"suite {self.suite}"

    @property
    def name(self) -> str:
        return self.suite

    @property
    def version(self) -> str:
        """Content hash: changes when anything that affects the scores changes, not comments."""
        return _version(self)

    def tools_for(self, case: Case) -> list[Tool]:
        return [t for t in self.tools if t.name in case.tools]

    def case(self, case_id: str) -> Case:
        return next(c for c in self.cases if c.id == case_id)


def _version(suite: Suite) -> str:
    payload = json.dumps(suite.dump(), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _names_checks(doc: YamlDoc) -> list[str]:
    """Unique case ids and known tool names, on the raw file: reported even when other keys
    of the same file are wrong, so one pass of `canary validate` shows every problem."""
    data = doc.data if isinstance(doc.data, dict) else {}
    tools = _items(data.get("tools"))
    tool_names = {t.get("name") for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)}
    cases = _items(data.get("cases"))
    problems, seen = [], set()
    for i, case in enumerate(cases):
        if not isinstance(case, dict):
            continue
        if not isinstance(case.get("id"), (str, int, float, bool, type(None))):
            continue  # the schema reports an id that is not a plain value
        if case.get("id") in seen:
            problems.append(doc.problem(("cases", i, "id"), f"duplicate case id '{case.get('id')}'"))
        seen.add(case.get("id"))
        offered = _items(case.get("tools"))
        for j, name in enumerate(offered):
            if isinstance(name, str) and name not in tool_names:
                known = ", ".join(sorted(str(n) for n in tool_names)) or "none defined"
                problems.append(doc.problem(("cases", i, "tools", j), f"unknown tool '{name}' (suite tools: {known})"))
        for name in (case.get("tool_results") if isinstance(case.get("tool_results"), dict) else {}):
            if name not in offered:
                problems.append(doc.problem(("cases", i, "tool_results", name),
                                            f"tool_results for '{name}', which the case does not offer in `tools`"))
    return problems


def _turn_locs(suite: Suite):
    """(case, turn index, turn, its place in the file) of every turn."""
    for i, case in enumerate(suite.cases):
        for t, turn in enumerate(case.turns):
            yield case, t, turn, ("cases", i) if case.prompt is not None else ("cases", i, "turns", t)


def _turn_checks(doc: YamlDoc, suite: Suite) -> list[str]:
    """Every turn has asserts; a reference only calls the case's tools."""
    problems = []
    for case, _t, turn, loc in _turn_locs(suite):
        if not turn.asserts:
            problems.append(doc.problem(loc, f"case '{case.id}': every turn needs at least one assert"))
        for round_ in (turn.reference.rounds if turn.reference else []):
            for call in round_:
                if call.name not in case.tools:
                    problems.append(doc.problem(loc + ("reference",),
                                                f"reference calls '{call.name}', not in the case's tools"))
    return problems


def _schema_checks(doc: YamlDoc) -> list[str]:
    """Every JSON Schema in the file (tools' parameters, the values of is-json and
    contains-json) checked against the metaschema, as an API or the scorer would read it. On
    the raw file, like _names_checks: reported with the other problems of the same file.
    (That a schema is a mapping at all is the records' check.)"""
    data = doc.data if isinstance(doc.data, dict) else {}
    problems = []
    for i, tool in enumerate(_items(data.get("tools"))):
        if isinstance(tool, dict) and isinstance(tool.get("parameters"), dict) \
                and (problem := checks.schema_problem(tool["parameters"])):
            problems.append(doc.problem(("tools", i, "parameters"), f"parameters: {problem}"))
    for i, case in enumerate(_items(data.get("cases"))):
        if not isinstance(case, dict):
            continue
        turns = [(("cases", i), case)] + [(("cases", i, "turns", t), turn)
                                          for t, turn in enumerate(_items(case.get("turns"))) if isinstance(turn, dict)]
        for loc, turn in turns:
            key = "assert" if "assert" in turn else "asserts"
            for j, a in enumerate(_items(turn.get(key))):
                if isinstance(a, dict) and isinstance(a.get("value"), dict) and isinstance(a.get("type"), str) \
                        and getattr(checks.REGISTRY.get(checks.split_type(a["type"])[1]), "schema", False) \
                        and (problem := checks.schema_problem(a["value"])):
                    problems.append(doc.problem(loc + (key, j), f"{key}: value is {problem}"))
    return problems


def _items(value) -> list:
    return value if isinstance(value, list) else []


def load_suite(path: Path, *, schemas: bool = True) -> Suite:
    """Load one suite file; raise ConfigError listing every problem as `path:line: message`.

    `schemas=False` checks its JSON Schemas for their shape only, not against the metaschema
    (the read commands, which neither send nor score a suite: jsonschema's import alone
    would be a third of their time)."""
    doc = load(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([f"{path}:1: a suite file is a mapping with `suite:` and `cases:`"])
    suite, problems = doc.validate(Suite)
    problems += _names_checks(doc)
    if schemas:
        problems += _schema_checks(doc)
    if suite is not None:
        problems += _turn_checks(doc, suite)
    if problems:
        raise ConfigError(sorted(dict.fromkeys(problems), key=_line))
    suite._doc = doc
    return suite


def _line(problem: str) -> int:
    """The line number in `path:line: message` (for listing problems in file order)."""
    try:
        return int(problem.split(": ", 1)[0].rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def load_suites(directory: Path, *, schemas: bool = True) -> tuple[dict[str, Suite], list[str]]:
    """Every suite in a directory: (good suites by name, problems of the bad files).

    A bad file never stops the others; two files naming the same suite is a problem too.
    `schemas`: as for load_suite.
    """
    suites: dict[str, Suite] = {}
    origin: dict[str, Path] = {}
    problems: list[str] = []
    directory = Path(directory)
    if not directory.is_dir():
        return {}, [f"{directory}:1: prompts directory not found"]
    for path in sorted(directory.glob("*.y*ml")):
        try:
            suite = load_suite(path, schemas=schemas)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if suite.name in suites:
            problems.append(f"{path}:1: suite '{suite.name}' is already defined in {origin[suite.name]}")
            continue
        suites[suite.name] = suite
        origin[suite.name] = path
    return suites, problems


def reference_reply(turn: Turn) -> checks.TurnReply:
    """What a model answering exactly like the reference would be scored on."""
    ref = turn.reference
    calls = [{"name": c.name, "arguments": c.arguments} for r in ref.rounds for c in r]
    return checks.TurnReply(text=ref.text, tool_calls=calls, finish_reason="stop")


def _turns(suite: Suite):
    """(case, turn, where) of every turn, `where` naming its file line, case and turn."""
    for case, t, turn, loc in _turn_locs(suite):
        yield case, turn, f"{suite.where(loc)}: case {case.id}" + (f", turn {t + 1}" if len(case.turns) > 1 else "")


def reference_problems(suite: Suite) -> list[str]:
    """Cases whose reference does not pass its own asserts."""
    problems = []
    for case, turn, where in _turns(suite):
        if turn.reference is not None:
            pattern = case.answer.regex if case.answer else None
            failed = [v for v in checks.run(turn.asserts, reference_reply(turn), pattern) if not v.passed]
            problems += [f"{where}: reference fails {v.type}: {v.explanation}" for v in failed]
    return problems


def reference_warnings(suite: Suite) -> list[str]:
    """Turns without a reference: they run and are scored (promptfoo users write tests without
    known answers), but nothing shows they can be passed, and the simulator cannot answer them."""
    return [f"{where}: warning: no reference, so nothing shows this turn can be passed"
            for _case, turn, where in _turns(suite) if turn.reference is None]


def regex_warnings(suite: Suite) -> list[str]:
    """Answer patterns and regex assertions that run out of time on a long synthetic reply
    (bounded.slow_regex): a long enough real reply would fail them, whatever it says."""
    warnings, seen = [], set()
    for case, turn, where in _turns(suite):
        samples = [turn.reference.text] if turn.reference else []
        patterns = [(case.answer.regex, True, "answer regex")] if case.answer else []
        patterns += [(a.value, False, f"{a.type}") for a in turn.asserts if checks.split_type(a.type)[1] == "regex"]
        for pattern, every_match, what in patterns:
            if (pattern, every_match) in seen:
                continue
            seen.add((pattern, every_match))
            slow = bounded.slow_regex(pattern, every_match=every_match, samples=samples)
            if slow:
                warnings.append(
                    f"{where}: warning: {what} /{pattern}/ runs out of its {bounded.CHECK_TIMEOUT:g} s on a "
                    f"synthetic reply of {bounded.MAX_SCORED_CHARS:,} characters ({slow}), so a long reply "
                    "would fail it: avoid nested quantifiers like (a+)+ and neighbouring parts that can "
                    "match the same characters")
    return warnings
