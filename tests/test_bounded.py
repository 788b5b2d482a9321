"""Scoring is bounded per assertion: hostile texts give a verdict (failed, with the reason),
never an exception, and the shipped suites' regexes run in linear time."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from canary import bounded, checks
from canary.suites import load_suites, regex_warnings

PROMPTS = Path(__file__).parent.parent / "prompts"


@dataclass
class A:
    type: str
    value: object = None
    tolerance: float | None = None


def verdict(type_, value, text, **reply):
    [v] = checks.run([A(type_, value)], checks.TurnReply(text=text, **reply))
    return v


CATASTROPHIC = "a" * 60 + "!"  # (a|aa)+$ would backtrack on it for ages


@pytest.mark.parametrize("type_", ["regex", "not-regex"])
def test_a_check_that_runs_out_of_time_fails_negated_or_not(type_):
    v = verdict(type_, "(a|aa)+$", CATASTROPHIC)
    assert (v.passed, v.explanation) == (False, f"check timed out after {bounded.CHECK_TIMEOUT:g} s on a reply of 61 characters")


def test_an_answer_extraction_that_runs_out_of_time_fails_the_text_checks_only():
    assertions = [A("icontains", "a"), A("not-tool-call")]
    text, calls = checks.run(assertions, checks.TurnReply(text=CATASTROPHIC), answer_pattern="(a|aa)+$")
    assert not text.passed and text.explanation.startswith("check timed out after 1 s on a reply of 61 characters "
                                                           "(extracting the answer with /(a|aa)+$/)")
    assert calls.passed  # read from the reply, not from the answer


def test_a_reply_longer_than_the_cap_is_scored_on_its_start_and_says_so():
    text = "The answer is Paris. " + "x" * bounded.MAX_SCORED_CHARS + " Lyon"
    paris, lyon = checks.run([A("icontains", "paris"), A("icontains", "lyon")], checks.TurnReply(text=text))
    note = f"(scored on its first 100,000 of {len(text):,} characters)"
    assert paris.passed and paris.explanation.endswith(note)
    assert not lyon.passed and lyon.explanation.endswith(note)


@pytest.mark.parametrize("text", ["[" * 50_000, "{" * 50_000, "[0," * 20_000, '{"a":' * 20_000, "[{" * 20_000])
def test_contains_json_on_hostile_text_is_a_verdict_not_a_crash(text):
    v = verdict("contains-json", None, text)
    assert v.passed is False and v.explanation.startswith("no JSON found")


def test_contains_json_still_finds_json_after_brackets_that_are_not():
    assert verdict("contains-json", {"type": "object", "required": ["a"]}, "[[ { oops ] " + '{"a": 1}').passed


def test_is_json_on_deep_nesting_fails_instead_of_raising():
    v = verdict("is-json", None, "[" * 5000 + "]" * 5000)
    assert not v.passed and v.explanation.startswith("not JSON (nested too deeply)")


def test_a_check_that_cannot_read_the_reply_fails_and_says_why():
    deep: list = []
    for _ in range(5000):  # tool-call arguments nested deeper than the comparison can follow
        deep = [deep]
    v = verdict("tool-call", {"name": "f", "arguments": {"x": [[1]]}}, "",
                tool_calls=[{"name": "f", "arguments": {"x": deep}}])
    assert not v.passed and v.explanation.startswith("could not check this reply (RecursionError")


@pytest.mark.parametrize("type_, value", [("word-count", 3), ("sentence-count", 3), ("paragraph-count", 1),
                                          ("numbered-items", 1), ("bullet-items", 1), ("number", 4)])
@pytest.mark.parametrize("text", ["\n" * 100_000 + "x", ". " * 50_000, "- " * 50_000, "1." * 50_000,
                                  "a'" * 50_000 + "!"])
def test_the_counting_checks_give_a_verdict_on_degenerate_text(type_, value, text):
    assert verdict(type_, value, text).explanation  # no exception, no timeout needed: they are linear
    assert "timed out" not in verdict(type_, value, text).explanation


def test_the_starter_answer_regex_reads_a_runaway_reply_to_its_end():
    [answer_regex] = {c.answer.regex for c in load_suites(PROMPTS)[0]["reasoning"].cases}
    runaway = "ANSWER: 4" + ". " * 49_000 + "x"  # 4.5 s in `re` at 800 repeats, minutes at this length
    assert checks.extract_answer(runaway, answer_regex).endswith(". x")
    assert checks.extract_answer("Working.\n**ANSWER:** 42 (6 x 7).\n", answer_regex) == "42"


def test_no_starter_regex_runs_out_of_time_on_a_long_reply():
    suites, _ = load_suites(PROMPTS)
    assert [w for s in suites.values() for w in regex_warnings(s)] == []
