"""Deterministic assertions on a reply: one registry, `not-` done once, readable verdicts.

Names follow promptfoo's where the meaning is the same. Every check reads a `TurnReply`
(the turn's final text, every tool call made during the turn, the last finish reason) and
returns (passed, detail); `run` adds negation, answer extraction and the one-line
explanation a person reads in an alert.

Replies are hostile input: every check is bounded (see bounded.py). The text checks read at
most `MAX_SCORED_CHARS` characters, each assertion has `CHECK_TIMEOUT` seconds, and one that
runs out of time (or cannot read the reply at all) fails with the reason, never hangs or
raises.
"""
from __future__ import annotations

import bisect
import json
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from . import bounded
from .bounded import CHECK_TIMEOUT, MAX_SCORED_CHARS, CheckTimeout, compile_regex

log = logging.getLogger("canary.checks")


@dataclass
class TurnReply:
    text: str = ""
    tool_calls: list[dict] = field(default_factory=list)  # {"name":..., "arguments": {...}}
    finish_reason: str | None = None


@dataclass
class Verdict:
    type: str
    passed: bool
    explanation: str
    timed_out: bool = False  # the check ran out of its time (never stored: the explanation says so)

    def as_dict(self) -> dict:
        return {"type": self.type, "passed": self.passed, "explanation": self.explanation}


Result = tuple[bool, str]


@dataclass
class Check:
    fn: Callable[[Any, Any], Result]  # (value, subject) -> (passed, detail)
    validate: Callable[[Any], str | None]  # problem with `value`, or None
    reads: str = "text"  # "text" (the answer), "reply" (the whole TurnReply)
    schema: bool = False  # its value is a JSON Schema (checked in full by `schema_problem`)


REGISTRY: dict[str, Check] = {}


def check(name: str, validate: Callable[[Any], str | None], reads: str = "text", schema: bool = False):
    def register(fn):
        REGISTRY[name] = Check(fn, validate, reads, schema)
        return fn
    return register


# --- value validators -------------------------------------------------------------------

def _string(v):
    return None if isinstance(v, str) and v != "" else "value must be a non-empty string"


def _strings(v):
    ok = isinstance(v, list) and v and all(isinstance(s, str) for s in v)
    return None if ok else "value must be a non-empty list of strings"


def _regex(v):
    if not isinstance(v, str):
        return "value must be a regular expression string"
    try:
        compile_regex(v)
    except ValueError as exc:
        return str(exc)
    return None


def _json_schema(v):
    """A JSON Schema's shape (a mapping or a boolean), as every load checks it; its full check
    against the metaschema is `schema_problem`, for the commands that score with it."""
    if v is None or isinstance(v, (dict, bool)):
        return None
    return f"value is not a valid JSON Schema: {v!r} is not of type 'object', 'boolean'"


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a JSON Schema (draft 2020-12, checked against its metaschema), or None."""
    import jsonschema  # 60 ms to import: only the commands that send a suite or validate it pay for it
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}"
    return None


def _count(v):
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return None
    if isinstance(v, dict) and v and set(v) <= {"min", "max"} and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v.values()):
        if v.get("min", 0) > v.get("max", v.get("min", 0)):
            return f"min ({v['min']}) is larger than max ({v['max']})"
        return None
    return "value must be a count (e.g. 3) or {min: N, max: M}"


def _number(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    return None if ok else "value must be a number"


def _tool_call(v):
    if v is None:
        return None  # any tool call
    if isinstance(v, str):
        return None  # just the name
    if not isinstance(v, dict) or "name" not in v or set(v) - {"name", "arguments"}:
        return "value must be {name: TOOL, arguments: {...}} (arguments optional)"
    if not isinstance(v.get("arguments", {}), dict):
        return "arguments must be a mapping of argument name to expected value(s)"
    return None


# --- helpers shared by the checks ---------------------------------------------------------

def _short(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return json.dumps(text if len(text) <= n else text[: n - 1] + "…", ensure_ascii=False)


def _text_check(test: Callable[[str, Any], bool], describe: str):
    """One helper for the plain text checks: `describe` is filled with the value."""
    def fn(value, text: str) -> Result:
        passed = test(text, value)
        return passed, f"{describe.format(v=_show(value))}: {'yes' if passed else 'no'}, reply {_short(text)}"
    return fn


def _show(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def _count_ok(n: int, spec) -> bool:
    if isinstance(spec, int):
        return n == spec
    return spec.get("min", 0) <= n <= spec.get("max", math.inf)


def _count_text(spec) -> str:
    if isinstance(spec, int):
        return f"exactly {spec}"
    lo, hi = spec.get("min"), spec.get("max")
    return f"{lo} to {hi}" if lo is not None and hi is not None else (
        f"at least {lo}" if lo is not None else f"at most {hi}")


def _counter(name: str, count: Callable[[str], int]):
    def fn(value, text: str) -> Result:
        n = count(text)
        return _count_ok(n, value), f"{n} {name} (wanted {_count_text(value)})"
    return fn


_NUMBER = r"[-+]?\$?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"


def parse_number(text: str) -> float | None:
    """The last number written in the text (commas, a $ sign and a % sign tolerated).

    The typographic minus (U+2212) that models often write counts as a minus sign.
    """
    found = bounded.findall(_NUMBER, text.replace("\u2212", "-"))
    if not found:
        return None
    raw = found[-1].replace(",", "").replace("$", "")
    try:
        return float(raw)
    except ValueError:
        return None


def _json_values(text: str):
    """Every JSON object or array embedded in the text (fenced or not), first to last.

    Bounded however hostile the text: only a bracket that can start JSON (`{"`, `{}`, `[1`...)
    is tried, and the search gives up after JSON_MAX_FAILED_STARTS failed starts or once the
    failed starts have read JSON_READ_BUDGET times the text (a reply of 50,000 `{"` would
    otherwise be parsed from each of them). A value nested deeper than the JSON parser
    allows is not JSON here."""
    decoder = json.JSONDecoder()
    starts = bounded.starts(_JSON_START, text)
    budget, failures, k = JSON_READ_BUDGET * len(text) + 10_000, 0, 0
    while k < len(starts) and budget > 0 and failures < JSON_MAX_FAILED_STARTS:
        bounded.check_time()
        i = starts[k]
        try:
            obj, end = decoder.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError) as exc:
            budget -= (exc.pos - i + 1) if isinstance(exc, json.JSONDecodeError) else len(text) - i
            failures += 1
            k += 1
            continue
        yield obj
        k = bisect.bisect_left(starts, end, k + 1)


_JSON_START = r'\{\s*["}]|\[\s*[-0-9"\[{tfn\]]'  # a bracket followed by what JSON allows there
JSON_MAX_FAILED_STARTS = 1000
JSON_READ_BUDGET = 4


def _norm(v):
    return " ".join(v.split()).casefold() if isinstance(v, str) else v


def _same(expected, actual) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual  # True is not 1
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, (int, float)) and isinstance(actual, str):
        try:
            return _same(expected, float(actual.strip()))
        except ValueError:
            return False
    if isinstance(expected, str) and isinstance(actual, (int, float)):
        return _same(actual, expected)  # order_id "1042" passed as the number 1042
    if isinstance(expected, dict) and isinstance(actual, dict):
        return arguments_match(expected, actual)[0]
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual))
    return _norm(expected) == _norm(actual)


def arguments_match(expected: dict, actual: dict) -> Result:
    """Every expected argument is present and equal; a list lists several acceptable values.

    Strings compare case- and whitespace-insensitively, numbers numerically; arguments the
    case does not mention are allowed (optional parameters).
    """
    for key, want in expected.items():
        if key not in actual:
            return False, f"argument {key} missing"
        got = actual[key]
        options = want if isinstance(want, list) and not isinstance(got, list) else [want]
        if not any(_same(option, got) for option in options):
            return False, f"{key}={json.dumps(got, ensure_ascii=False)}, wanted {_show(want)}"
    return True, "arguments match"


# --- the checks ------------------------------------------------------------------------------

check("equals", _string)(_text_check(lambda t, v: t.strip() == v.strip(), "equals {v}"))
check("contains", _string)(_text_check(lambda t, v: v in t, "contains {v}"))
check("icontains", _string)(_text_check(lambda t, v: v.casefold() in t.casefold(), "contains {v}"))
check("starts-with", _string)(_text_check(lambda t, v: t.lstrip().startswith(v), "starts with {v}"))
check("ends-with", _string)(_text_check(lambda t, v: t.rstrip().endswith(v), "ends with {v}"))
check("contains-any", _strings)(_text_check(lambda t, v: any(s in t for s in v), "contains any of {v}"))
check("contains-all", _strings)(_text_check(lambda t, v: all(s in t for s in v), "contains all of {v}"))
check("icontains-any", _strings)(_text_check(
    lambda t, v: any(s.casefold() in t.casefold() for s in v), "contains any of {v}"))
check("icontains-all", _strings)(_text_check(
    lambda t, v: all(s.casefold() in t.casefold() for s in v), "contains all of {v}"))


@check("regex", _regex)
def _regex_check(value, text) -> Result:
    m = bounded.search(value, text)
    return (True, f"the pattern matches {_short(m.group(0), 30)}") if m else \
        (False, f"no match for the pattern in {_short(text)}")


@check("is-json", _json_schema, schema=True)
def _is_json(value, text) -> Result:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = bounded.sub(r"^```[a-zA-Z]*\n?|\n?```$", "", stripped).strip()
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError as exc:
        return False, f"not JSON ({exc.msg} at char {exc.pos}): {_short(text)}"
    except RecursionError:
        return False, f"not JSON (nested too deeply): {_short(text)}"
    return _schema_result(value, obj, "reply is JSON")


@check("contains-json", _json_schema, schema=True)
def _contains_json(value, text) -> Result:
    last = "no JSON found in " + _short(text)
    for obj in _json_values(text):
        passed, detail = _schema_result(value, obj, "contains JSON")
        if passed:
            return passed, detail
        last = detail
    return False, last


def _schema_result(schema, obj, ok: str) -> Result:
    if schema is None:
        return True, ok
    import jsonschema
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(obj))
    if error is None:
        return True, ok + " matching the schema"
    path = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return False, f"JSON does not match the schema at {path}: {error.message}"


def _words(text: str) -> int:
    return len(bounded.findall(r"\b[\w'’-]+\b", text))


# A full stop after these does not end a sentence ("e.g. salt", "Dr. Lee", "U.S. law").
_ABBREVIATION = r"(?:\b(?i:e\.g|i\.e|vs|cf|approx|mr|mrs|ms|dr|prof|st)|\b[A-Z])\.$"


def _sentences(text: str) -> int:
    """Sentences end at . ! or ? (optionally inside a closing quote or bracket) before a space."""
    pieces = bounded.split(r"(?<=[.!?])\s+|(?<=[.!?][\"'”’)\]])\s+", text.strip())
    count, joined = 0, False
    for piece in pieces:
        if not joined and bounded.search(r"\w", piece):
            count += 1
        joined = bool(bounded.search(_ABBREVIATION, piece[-16:]))  # its end is all that matters
    return count


def _paragraphs(text: str) -> int:
    return len([p for p in bounded.split(r"\n\s*\n", text.strip()) if p.strip()])


# a line's own indentation only ([ \t]*, not \s*, which would rescan the lines below)
def _numbered(text: str) -> int:
    return len(bounded.findall(r"(?m)^[ \t]*\d+[.)]\s+\S", text))


def _bullets(text: str) -> int:
    return len(bounded.findall(r"(?m)^[ \t]*[-*•]\s+\S", text))


check("word-count", _count)(_counter("words", _words))
check("sentence-count", _count)(_counter("sentences", _sentences))
check("paragraph-count", _count)(_counter("paragraphs", _paragraphs))
check("numbered-items", _count)(_counter("numbered items", _numbered))
check("bullet-items", _count)(_counter("bullet items", _bullets))


@check("number", _number)
def _number_check(value, text, tolerance: float | None = None) -> Result:
    got = parse_number(text)
    tol = 1e-9 if tolerance is None else tolerance
    want = f"{value:.12g}" + (f" (plus or minus {tolerance:.12g})" if tolerance else "")
    if got is None:
        return False, f"expected {want}, the answer has no number: {_short(text)}"
    return abs(got - value) <= tol, f"expected {want}, the answer gives {got:.12g}"


@check("finish-reason", _string, reads="reply")
def _finish_reason(value, reply: TurnReply) -> Result:
    got = reply.finish_reason
    return got == value, f"finish reason {got!r}, wanted {value!r}"


@check("tool-call", _tool_call, reads="reply")
def _tool_call_check(value, reply: TurnReply) -> Result:
    calls = reply.tool_calls
    if value is None:
        return bool(calls), (f"{len(calls)} tool call(s): " + ", ".join(c["name"] for c in calls)
                             if calls else "no tool call")
    name = value if isinstance(value, str) else value["name"]
    wanted = {} if isinstance(value, str) else value.get("arguments", {})
    named = [c for c in calls if c["name"] == name]
    if not named:
        made = ", ".join(c["name"] for c in calls) or "none"
        return False, f"no call to {name} (calls made: {made})"
    why = ""
    for call in named:
        ok, why = arguments_match(wanted, call.get("arguments") or {})
        if ok:
            return True, f"{name} called with matching arguments"
    return False, f"{name} called, but {why}"


# --- running a list of assertions ------------------------------------------------------------

def split_type(type_: str) -> tuple[bool, str]:
    negated = type_.startswith("not-")
    return negated, type_[4:] if negated else type_


def validate(assertion) -> str | None:
    """Why an assertion (anything with .type, .value, .tolerance) is unusable, or None."""
    _, base = split_type(assertion.type)
    entry = REGISTRY.get(base)
    if entry is None:
        return f"unknown assertion type '{assertion.type}' (known: {', '.join(sorted(REGISTRY))}; any may take a not- prefix)"
    if assertion.tolerance is not None and base != "number":
        return "tolerance only applies to the number assertion"
    return entry.validate(assertion.value)


def extract_answer(text: str, pattern: str | None) -> str | None:
    """The part of the reply the asserts read: the last match of `pattern` (its first group)."""
    if not pattern:
        return text
    m = bounded.last_match(pattern, text)
    if m is None:
        return None
    return m.group(1) if m.re.groups else m.group(0)


def run(assertions, reply: TurnReply, answer_pattern: str | None = None,
        timeout: float = CHECK_TIMEOUT) -> list[Verdict]:
    """Every assertion on one turn's reply, each with its one-line explanation.

    Bounded: the text read is capped at MAX_SCORED_CHARS, the answer extraction and each
    assertion get CHECK_TIMEOUT seconds, and a check that runs out of time, or cannot read
    the reply, fails with that reason. It never raises because of a reply."""
    length = len(reply.text)
    capped = length > MAX_SCORED_CHARS
    scored = replace(reply, text=reply.text[:MAX_SCORED_CHARS]) if capped else reply
    def timed_out() -> str:  # the explanation, written only for a check that ran out of time
        return bounded.timeout_explanation(timeout, length)
    extraction_timed_out = False
    try:
        with bounded.time_limit(timeout):
            answer = extract_answer(scored.text, answer_pattern)
        # read only when there is no answer: not written for the replies that have one
        missing = "" if answer is not None else f"no answer in the form the case asks for: {_short(scored.text)}"
    except CheckTimeout:
        answer, missing = None, f"{timed_out()} (extracting the answer with /{answer_pattern}/)"
        extraction_timed_out = True
    note = f" (scored on its first {MAX_SCORED_CHARS:,} of {length:,} characters)" if capped else ""
    verdicts = []
    for a in assertions:
        verdict = _verdict(a, scored, answer, missing, timed_out, timeout, extraction_timed_out)
        verdicts.append(replace(verdict, explanation=verdict.explanation + note) if note else verdict)
    return verdicts


def _verdict(a, reply: TurnReply, answer: str | None, missing: str, timed_out: Callable[[], str], timeout: float,
             extraction_timed_out: bool) -> Verdict:
    negated, base = split_type(a.type)
    entry = REGISTRY[base]
    if entry.reads == "text" and answer is None:
        return Verdict(a.type, False, missing, timed_out=extraction_timed_out)
    subject = reply if entry.reads == "reply" else answer
    try:
        with bounded.time_limit(timeout):
            if base == "number":
                passed, detail = entry.fn(a.value, subject, a.tolerance)
            else:
                passed, detail = entry.fn(a.value, subject)
    except CheckTimeout:  # negated or not: nobody knows the verdict, so it fails
        return Verdict(a.type, False, timed_out(), timed_out=True)
    except Exception as exc:  # a check must never stop a run: a reply it cannot read fails it
        log.warning("%s could not read a reply: %s: %s", a.type, type(exc).__name__, exc)
        return Verdict(a.type, False, f"could not check this reply ({type(exc).__name__}: {str(exc)[:120]})")
    if negated:
        passed = not passed
    return Verdict(a.type, passed, ("must not: " if negated else "") + detail)
