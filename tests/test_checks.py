"""The assertion registry: every type passing and failing, its `not-` form, answer extraction,
tool-call argument matching and the validation of assertion values."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from canary import checks
from canary.checks import TurnReply
from canary.strict import Invalid
from canary.suites import Assertion

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def verdict(type_, value=None, text="", calls=(), finish="stop", tolerance=None, pattern=None):
    """The one verdict of one assertion on a reply (the assertion validated as a suite would)."""
    assertion = Assertion(type=type_, value=value, tolerance=tolerance)
    reply = TurnReply(text=text, tool_calls=[{"name": n, "arguments": a} for n, a in calls],
                      finish_reason=finish)
    [result] = checks.run([assertion], reply, pattern)
    return result


# (type, value, reply text, passes, a key part of the explanation)
TEXT_CASES = [
    ("equals", "Paris", "  Paris\n", True, 'equals "Paris": yes'),
    ("equals", "Paris", "paris", False, 'equals "Paris": no, reply "paris"'),
    ("contains", "Au", "The symbol is Au.", True, 'contains "Au": yes'),
    ("contains", "Au", "the symbol is au.", False, 'contains "Au": no'),
    ("icontains", "TOKYO", "it is tokyo", True, 'contains "TOKYO": yes'),
    ("icontains", "kyoto", "it is tokyo", False, 'contains "kyoto": no'),
    ("starts-with", "Ahoy", "\n  Ahoy! Pack water.", True, 'starts with "Ahoy": yes'),
    ("starts-with", "Ahoy", "Sure thing. Ahoy!", False, 'starts with "Ahoy": no'),
    ("ends-with", "That is all for now.", "Use it twice.\nThat is all for now.\n", True,
     'ends with "That is all for now.": yes'),
    ("ends-with", "That is all for now.", "That is all for now. Bye!", False, "no, reply"),
    ("contains-any", ["Au", "gold"], "It is gold.", True, 'contains any of ["Au", "gold"]: yes'),
    ("contains-any", ["Au", "gold"], "It is Gold.", False, "no"),
    ("contains-all", ["Au", "Ag"], "Au and Ag", True, 'contains all of ["Au", "Ag"]: yes'),
    ("contains-all", ["Au", "Ag"], "Au only", False, "no"),
    ("icontains-any", ["syn", "handshake"], "A three-way HANDSHAKE.", True, "yes"),
    ("icontains-any", ["syn", "handshake"], "It just connects.", False, "no"),
    ("icontains-all", ["oslo", "madrid"], "MADRID beats Oslo", True, "yes"),
    ("icontains-all", ["oslo", "madrid"], "Madrid is warmer", False, "no"),
    ("regex", r"\b15:45\b", "It lands at 15:45 local time.", True, 'the pattern matches "15:45"'),
    ("regex", r"\b15:45\b", "It lands at 115:450.", False, 'no match for the pattern in "It lands at 115:450."'),
    ("is-json", None, '```json\n{"answer": "Au"}\n```', True, "reply is JSON"),
    ("is-json", None, 'Sure! {"answer": "Au"}', False, "not JSON (Expecting value at char 0)"),
    ("is-json", SCHEMA, '{"answer": "Au", "confidence": 1}', True, "matching the schema"),
    ("is-json", SCHEMA, '{"answer": 79}', False, "does not match the schema at answer"),
    ("contains-json", None, 'Here you go: {"a": [1, 2]} and more.', True, "contains JSON"),
    ("contains-json", None, "No braces here.", False, "no JSON found in"),
    ("contains-json", SCHEMA, 'first {"x": 1} then {"answer": "Ag"}', True, "matching the schema"),
    ("contains-json", SCHEMA, 'only {"x": 1}', False, "at (root): 'answer' is a required property"),
    ("word-count", {"max": 5}, "One two three-way handshake's.", True, "4 words (wanted at most 5)"),
    ("word-count", {"min": 2, "max": 3}, "just one", True, "2 words (wanted 2 to 3)"),
    ("word-count", 1, "Green.", True, "1 words (wanted exactly 1)"),
    ("word-count", 1, "It is green.", False, "3 words (wanted exactly 1)"),
    ("sentence-count", 2, "Use salt, e.g. sea salt. Dr. Lee agrees.", True, "2 sentences (wanted exactly 2)"),
    ("sentence-count", 2, 'He said "go." Then he left! Why?', False, "3 sentences (wanted exactly 2)"),
    ("paragraph-count", 2, "First part.\n\n  \nIn short, second.", True, "2 paragraphs"),
    ("paragraph-count", 2, "One block\nstill one block.", False, "1 paragraphs (wanted exactly 2)"),
    ("numbered-items", 3, "Ideas:\n1. Bread\n2) Buns\n 3. **Cake**", True, "3 numbered items"),
    ("numbered-items", 3, "1. Bread\n2. Buns\n3. Cake\n4. Pie", False, "4 numbered items (wanted exactly 3)"),
    ("bullet-items", {"min": 2}, "- kiwi\n* guava\n• lemon", True, "3 bullet items (wanted at least 2)"),
    ("bullet-items", {"min": 2}, "- kiwi\nguava", False, "1 bullet items (wanted at least 2)"),
    ("number", 42, "So the total is 42.", True, "expected 42, the answer gives 42"),
    ("number", 1250, "That comes to $1,250.00", True, "expected 1250, the answer gives 1250"),
    ("number", -39, "It prints \u221239", True, "expected -39, the answer gives -39"),
    ("number", 42, "I get 41.", False, "expected 42, the answer gives 41"),
    ("number", 42, "forty-two", False, 'expected 42, the answer has no number: "forty-two"'),
]


@pytest.mark.parametrize("type_, value, text, passes, why", TEXT_CASES,
                         ids=[f"{c[0]}-{'pass' if c[3] else 'fail'}-{i}" for i, c in enumerate(TEXT_CASES)])
def test_text_checks_and_their_negation(type_, value, text, passes, why):
    v = verdict(type_, value, text)
    assert (v.type, v.passed) == (type_, passes)
    assert why in v.explanation
    negated = verdict("not-" + type_, value, text)
    assert negated.passed is (not passes)
    assert negated.explanation.startswith("must not: ") and why in negated.explanation


def test_every_registered_check_is_covered_here():
    covered = {c[0] for c in TEXT_CASES} | {"finish-reason", "tool-call"}
    assert covered == set(checks.REGISTRY)


def test_number_tolerance():
    assert verdict("number", 58.32, "ANSWER: $58.32", tolerance=0.005).passed
    v = verdict("number", 58.32, "ANSWER: $58.40", tolerance=0.005)
    assert not v.passed and v.explanation == "expected 58.32 (plus or minus 0.005), the answer gives 58.4"
    v = verdict("number", 12, "ANSWER: 23")
    assert v.explanation == "expected 12, the answer gives 23"  # no tolerance written: none shown
    assert verdict("not-number", 58.32, "ANSWER: $58.40", tolerance=0.005).passed


def test_number_reads_the_last_number():
    assert checks.parse_number("3 apples and 4 pears: 7") == 7
    assert checks.parse_number("no digits") is None
    assert checks.parse_number("\u22120.5") == -0.5


def test_finish_reason():
    assert verdict("finish-reason", "stop", "x", finish="stop").passed
    v = verdict("finish-reason", "stop", "x", finish="length")
    assert not v.passed and v.explanation == "finish reason 'length', wanted 'stop'"
    assert verdict("not-finish-reason", "length", "x", finish="stop").passed


# --- answer extraction -----------------------------------------------------------------------

ANSWER = r"ANSWER:\s*(.+)"


def test_the_asserts_read_the_last_answer_match():
    text = "First guess ANSWER: 80\nOn reflection that is wrong.\nANSWER: 40"
    assert verdict("number", 40, text, pattern=ANSWER).passed
    assert not verdict("number", 80, text, pattern=ANSWER).passed
    assert checks.extract_answer(text, ANSWER) == "40"


def test_a_pattern_without_a_group_yields_the_whole_match():
    assert checks.extract_answer("total 12 apples", r"\d+ apples") == "12 apples"
    assert checks.extract_answer("anything", None) == "anything"


def test_no_answer_match_fails_with_a_readable_explanation():
    v = verdict("number", 12, "The answer is 12.", pattern=ANSWER)
    assert not v.passed
    assert v.explanation == 'no answer in the form the case asks for: "The answer is 12."'
    # a negated check fails too: a reply with no answer is never a pass
    assert not verdict("not-contains", "13", "The answer is 12.", pattern=ANSWER).passed


def test_reply_level_checks_ignore_the_answer_pattern():
    v = verdict("tool-call", "get_weather", "no answer line", calls=[("get_weather", {})], pattern=ANSWER)
    assert v.passed


# --- tool calls ----------------------------------------------------------------------------------

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}


@pytest.mark.parametrize("arguments, passes, why", [
    ({"city": "Paris", "unit": "celsius"}, True, "get_weather called with matching arguments"),
    ({"city": "  PARIS ", "unit": "Celsius"}, True, "matching arguments"),
    ({"city": "Paris", "unit": "celsius", "days": 1}, True, "matching arguments"),  # extra optional argument
    ({"city": "Paris"}, False, "get_weather called, but argument unit missing"),
    ({"city": "Lyon", "unit": "celsius"}, False, 'get_weather called, but city="Lyon", wanted "Paris"'),
])
def test_tool_call_arguments(arguments, passes, why):
    v = verdict("tool-call", WEATHER, calls=[("get_weather", arguments)])
    assert v.passed is passes and why in v.explanation


def test_tool_call_numbers_compare_numerically():
    want = {"name": "convert_currency", "arguments": {"amount": 250}}
    for got in (250, 250.0, "250", " 250.0 "):
        assert verdict("tool-call", want, calls=[("convert_currency", {"amount": got})]).passed, got
    v = verdict("tool-call", want, calls=[("convert_currency", {"amount": 251})])
    assert not v.passed and "amount=251, wanted 250" in v.explanation
    # an id written as a string in the case matches a model that sent it as a number
    want = {"name": "lookup_order", "arguments": {"order_id": "1042"}}
    assert verdict("tool-call", want, calls=[("lookup_order", {"order_id": 1042})]).passed
    assert not verdict("tool-call", want, calls=[("lookup_order", {"order_id": 1043})]).passed


def test_tool_call_a_list_gives_several_acceptable_values():
    want = {"name": "search_flights", "arguments": {"destination": ["ORD", "MDW"]}}
    assert verdict("tool-call", want, calls=[("search_flights", {"destination": "mdw"})]).passed
    v = verdict("tool-call", want, calls=[("search_flights", {"destination": "Chicago"})])
    assert not v.passed and 'destination="Chicago", wanted ["ORD", "MDW"]' in v.explanation
    # a list-valued argument is compared as a list when the model sent a list
    want = {"name": "tag", "arguments": {"tags": ["a", "b"]}}
    assert verdict("tool-call", want, calls=[("tag", {"tags": ["A", "b"]})]).passed
    assert not verdict("tool-call", want, calls=[("tag", {"tags": ["a"]})]).passed


def test_tool_call_one_of_several_calls_may_match():
    calls = [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Paris", "unit": "celsius"})]
    assert verdict("tool-call", WEATHER, calls=calls).passed


def test_tool_call_by_name_any_call_and_negation():
    v = verdict("tool-call", "send_email", calls=[("lookup_order", {"order_id": "A-1"})])
    assert not v.passed and v.explanation == "no call to send_email (calls made: lookup_order)"
    assert verdict("not-tool-call", "send_email", calls=[("lookup_order", {})]).passed
    assert verdict("tool-call", None, calls=[("lookup_order", {})]).explanation == "1 tool call(s): lookup_order"
    v = verdict("not-tool-call", None, text="Water boils at 100 °C.")
    assert v.passed and v.explanation == "must not: no tool call"
    v = verdict("not-tool-call", None, calls=[("get_weather", {"city": "Paris"})])
    assert not v.passed and "get_weather" in v.explanation


def test_arguments_match_directly():
    assert checks.arguments_match({"when": {"a": 1}}, {"when": {"a": 1.0, "b": 2}}) == (True, "arguments match")
    assert checks.arguments_match({"flag": True}, {"flag": 1}) == (False, "flag=1, wanted True")


# --- validation of assertion values ------------------------------------------------------------

def problem(type_, value=None, tolerance=None):
    return checks.validate(SimpleNamespace(type=type_, value=value, tolerance=tolerance))


@pytest.mark.parametrize("type_, value, tolerance, message", [
    ("contains", "", None, "value must be a non-empty string"),
    ("not-equals", 3, None, "value must be a non-empty string"),
    ("contains-any", "Au", None, "value must be a non-empty list of strings"),
    ("icontains-all", [], None, "value must be a non-empty list of strings"),
    ("regex", "([a-z]", None, "invalid regular expression /([a-z]/"),
    ("regex", None, None, "value must be a regular expression string"),
    ("is-json", ["a"], None, "value is not a valid JSON Schema: ['a'] is not of type 'object', 'boolean'"),
    ("word-count", "ten", None, "value must be a count (e.g. 3) or {min: N, max: M}"),
    ("sentence-count", {"min": 1, "most": 3}, None, "value must be a count"),
    ("paragraph-count", -1, None, "value must be a count"),
    ("numbered-items", {"min": 5, "max": 2}, None, "min (5) is larger than max (2)"),
    ("number", "42", None, "value must be a number"),
    ("contains", "x", 0.5, "tolerance only applies to the number assertion"),
    ("finish-reason", None, None, "value must be a non-empty string"),
    ("tool-call", {"name": "x", "args": {}}, None, "value must be {name: TOOL, arguments: {...}}"),
    ("tool-call", {"name": "x", "arguments": ["a"]}, None, "arguments must be a mapping"),
])
def test_bad_values_are_explained(type_, value, tolerance, message):
    assert message in problem(type_, value, tolerance)


def test_a_json_schema_is_checked_against_its_metaschema_apart():
    """Every load checks a schema's shape; its metaschema check is schema_problem, which only
    the commands that send or score a suite run (jsonschema costs 60 ms to import)."""
    assert problem("is-json", {"type": "nonsense"}) is None
    assert checks.schema_problem({"type": "nonsense"}).startswith("not a valid JSON Schema: 'nonsense' is not valid")
    assert checks.schema_problem({"type": "object", "required": ["a"]}) is None


def test_unknown_types_list_the_known_ones():
    message = problem("not-contain", "x")
    assert message.startswith("unknown assertion type 'not-contain' (known: ")
    assert "contains, contains-all" in message and "any may take a not- prefix" in message


@pytest.mark.parametrize("type_, value", [
    ("contains", "x"), ("not-is-json", None), ("word-count", {"max": 25}), ("number", 3.5),
    ("tool-call", None), ("not-tool-call", "send_email"), ("tool-call", {"name": "f"}),
])
def test_good_values_pass_validation(type_, value):
    assert problem(type_, value) is None


def test_the_suite_schema_refuses_a_bad_assertion():
    with pytest.raises(Invalid, match="value must be a number"):
        Assertion(type="number", value="twelve")
