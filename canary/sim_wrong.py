"""Wrong answers for the simulated model: plausible ones that really fail a case's asserts.

Candidates, in order: wrong tool arguments (another enum value, shifted digits, swapped
words such as Paris -> London, a dropped argument), a missing parallel call, the wrong tool,
the answer with its facts shifted, instructions slipped (chatty wrapping, the wrong letter
case), a vague reply, a tool call where none is wanted. The first that fails the turn's
asserts, as the runner would score it, is the one served.
"""
from __future__ import annotations

import re
from typing import Any

from . import checks
from .suites import Case, Suite, Tool

VAGUE = "That depends on a few details that aren't given here, so I can't say for certain."
_CYCLES = ["yes no", "true false", "north south", "east west", "left right", "before after",
           "celsius fahrenheit", "larger smaller", "largest smallest", "higher lower", "odd even",
           "increase decrease", "always never", "cloudy sunny", "warm cold",
           "mercury venus earth mars jupiter saturn uranus neptune",
           "monday tuesday wednesday thursday friday saturday sunday",
           "january february march april june july august september october november december",
           "red blue green yellow purple", "paris london berlin madrid rome tokyo lisbon vienna"]
_SWAP = {w: ws[(i + 1) % len(ws)] for ws in (c.split() for c in _CYCLES) for i, w in enumerate(ws)}

Call = dict  # {"name": str, "arguments": dict}
Answer = tuple[str, list[Call]]  # (text, tool calls) of one response


def _swap_word(m: re.Match) -> str:
    word = m.group(0)
    new = _SWAP.get(word.lower())
    if new is None:
        return word
    return new.upper() if word.isupper() and len(word) > 1 else new.capitalize() if word[0].isupper() else new


def _alter(text: str) -> str:
    """The same answer with every digit shifted (d+1)%10 and key words swapped."""
    return re.sub(r"\d", lambda m: str((int(m.group()) + 1) % 10), re.sub(r"[A-Za-z]+", _swap_word, text))


def _wrong_value(key: str, value: Any, tool: Tool | None) -> Any:
    spec = (tool.parameters.get("properties") or {}).get(key) if tool else None
    enum = [v for v in (spec or {}).get("enum", []) if v != value] if isinstance(spec, dict) else []
    if enum:
        return enum[0]
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        altered = _alter(value)
        return altered if altered != value else (value.strip()[:-1] or "unknown")
    return None


def _guess_arguments(tool: Tool, prompt: str) -> dict:
    props = tool.parameters.get("properties") or {}
    names = re.findall(r"\b[A-Z][a-z]+\b", prompt)
    args = {}
    for key in tool.parameters.get("required") or list(props):
        spec = props.get(key) if isinstance(props.get(key), dict) else {}
        kind = spec.get("type")
        args[key] = (spec["enum"][0] if spec.get("enum") else 1 if kind in ("integer", "number")
                     else True if kind == "boolean" else names[-1] if names else prompt[:40])
    return args


def wrong_answer(suite: Suite, case: Case) -> Answer | None:
    """The first response of a wrong sample: the first candidate that fails turn 1's asserts.

    Each candidate is judged on the turn as the runner sees it when it ends: the wrong first
    response, then the reference for the later tool rounds and the final text.
    """
    turn, pattern = case.turns[0], case.answer.regex if case.answer else None
    ref, tools = turn.reference, {t.name: t for t in suite.tools_for(case)}
    candidates: list[tuple[Answer, checks.TurnReply]] = []

    def text(t: str) -> None:
        candidates.append(((t, []), checks.TurnReply(t, [], "stop")))

    def calls(first: list[Call], later: list[Call]) -> None:
        candidates.append((("", first), checks.TurnReply(ref.text, first + later, "stop")))

    if ref.rounds:
        first = [{"name": c.name, "arguments": dict(c.arguments)} for c in ref.rounds[0]]
        later = [{"name": c.name, "arguments": c.arguments} for r in ref.rounds[1:] for c in r]
        for i, call in enumerate(first):
            for key, value in call["arguments"].items():
                alt = _wrong_value(key, value, tools.get(call["name"]))
                if alt is not None:
                    calls(first[:i] + [{**call, "arguments": {**call["arguments"], key: alt}}] + first[i + 1:], later)
            for key in call["arguments"]:
                rest = {k: v for k, v in call["arguments"].items() if k != key}
                calls(first[:i] + [{**call, "arguments": rest}] + first[i + 1:], later)
        if len(first) > 1:
            calls(first[:-1], later)
        for name in [n for n in tools if n not in {c["name"] for c in first}]:
            calls([{"name": name, "arguments": first[0]["arguments"]}], later)
    text(_alter(ref.text))  # answered from memory (a tool case), or the same answer gone wrong
    text(f"Sure! Here is my answer:\n\n{ref.text}")  # instructions slipped: chatty wrapping...
    text(f"{ref.text}\n\nLet me know if you need anything else, I'm happy to help, as always.")
    text(ref.text.lower() if ref.text.isupper() else ref.text.upper())  # ...or the wrong case
    text(VAGUE)
    if not ref.rounds:
        forbidden = [a.value for a in turn.asserts if a.type in ("not-contains", "not-icontains")]
        if forbidden:
            text(f"{ref.text} ({', '.join(forbidden)})")
        for tool in tools.values():
            calls([{"name": tool.name, "arguments": _guess_arguments(tool, turn.user)}], [])
    for answer, reply in candidates:
        if any(not v.passed for v in checks.run(turn.asserts, reply, pattern)):
            return answer
    return None
