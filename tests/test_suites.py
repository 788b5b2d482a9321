"""Suite and config files: every problem reported at once as path:line, good suites kept."""
from __future__ import annotations

import textwrap

import pytest

from canary.config import load_config
from canary.errors import ConfigError
from canary.suites import load_suite, load_suites, reference_problems

GOOD = """\
suite: weather
repeat: 2
tools:
  - name: get_weather
    description: Current weather for a city
    parameters:
      type: object
      properties: {city: {type: string}}
      required: [city]
cases:
  - id: paris
    prompt: Weather in Paris?
    tools: [get_weather]
    tool_results: {get_weather: {temp_c: 18}}
    assert:
      - {type: tool-call, value: {name: get_weather, arguments: {city: Paris}}}
      - {type: icontains, value: "18"}
    reference:
      tool_calls: [{name: get_weather, arguments: {city: Paris}}]
      text: It is 18 C in Paris.
  - id: planets
    turns:
      - user: Answer in lowercase only. Largest planet?
        assert: [{type: icontains, value: jupiter}, {type: not-regex, value: "[A-Z]"}]
        reference: {text: jupiter.}
      - user: And the smallest?
        assert: [{type: icontains, value: mercury}]
        reference: {text: mercury.}
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path):
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    return info.value.problems


def test_a_good_suite_loads_with_its_turns(tmp_path):
    suite = load_suite(write(tmp_path, "s.yaml", GOOD))
    assert [c.id for c in suite.cases] == ["paris", "planets"]
    assert len(suite.case("planets").turns) == 2 and len(suite.case("paris").turns) == 1
    assert suite.case("paris").turns[0].reference.rounds[0][0].name == "get_weather"
    assert reference_problems(suite) == []


def test_every_problem_is_reported_with_its_line(tmp_path):
    text = GOOD.replace("repeat: 2", "repeat: 2\nrepet: 3").replace(
        "{type: icontains, value: mercury}", "{type: icontain, value: mercury}")
    path = write(tmp_path, "s.yaml", text)
    problems = problems_of(path)
    assert problems[0] == f"{path}:3: unknown key 'repet' (check its spelling)"  # in file order
    assert any(p.startswith(f"{path}:28: ") and "unknown assertion type 'icontain'" in p for p in problems)
    assert len(problems) == 2


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "s.yaml", "suite: x\ncases:\n  - id: a\n    prompt: [unclosed\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:") and "invalid YAML" in problem


def test_cross_checks(tmp_path):
    text = GOOD.replace("  - id: planets", "  - id: paris") \
               .replace("tools: [get_weather]", "tools: [get_wether]")
    path = write(tmp_path, "s.yaml", text)
    problems = problems_of(path)
    assert any(p.startswith(f"{path}:21: ") and "duplicate case id 'paris'" in p for p in problems)
    assert any(p.startswith(f"{path}:13: ") and "unknown tool 'get_wether'" in p for p in problems)


def test_a_reference_that_fails_its_asserts_is_reported(tmp_path):
    path = write(tmp_path, "s.yaml", GOOD.replace("reference: {text: mercury.}", "reference: {text: Mars.}"))
    [problem] = reference_problems(load_suite(path))
    assert problem.startswith(f"{path}:26: case planets, turn 2: reference fails icontains")


def test_a_bad_file_never_stops_the_others(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", "suite: broken\ncases: []\n")
    write(tmp_path, "c.yaml", GOOD)  # same suite name again
    suites, problems = load_suites(tmp_path)
    assert list(suites) == ["weather"]
    assert len(problems) == 2
    assert problems[0].startswith(f"{tmp_path / 'b.yaml'}:2: ")
    assert "already defined" in problems[1]


def test_version_ignores_comments_but_not_content(tmp_path):
    a = load_suite(write(tmp_path, "a.yaml", GOOD))
    b = load_suite(write(tmp_path, "b.yaml", "# a comment\n" + GOOD))
    c = load_suite(write(tmp_path, "c.yaml", GOOD.replace("Weather in Paris?", "Weather in Paris today?")))
    assert a.version == b.version != c.version


def test_config_errors_name_their_lines(tmp_path):
    path = write(tmp_path, "canary.yaml", """\
        database: sqlite:///x.db
        schedule: "61 6 * * *"
        models:
          - name: a
            provider: anthropc
            model: m
          - name: a
            provider: openai
            model: m
            concurency: 4
        detection: {method: sigmaa}
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = "\n".join(info.value.problems)
    assert f"{path}:2: schedule:" in text
    assert f"{path}:5: provider: unknown provider 'anthropc' (known: anthropic, openai)" in text
    assert f"{path}:10: unknown key 'concurency'" in text
    assert f"{path}:11: method:" in text


def test_config_defaults_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("CANARY_DATABASE_URL", raising=False)
    path = write(tmp_path, "canary.yaml", """\
        models:
          - {name: a, provider: anthropic, model: m}
          - {name: b, provider: openai, model: m, api_key_env: GATEWAY_KEY}
        """)
    config = load_config(path)
    assert config.database_url == f"sqlite:///{tmp_path / 'canary.db'}"
    assert config.prompts_dir == tmp_path / "prompts"
    assert [m.key_env for m in config.models] == ["ANTHROPIC_API_KEY", "GATEWAY_KEY"]
    assert config.detection.window == 14 and config.detection.confirm is True
    monkeypatch.setenv("CANARY_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert config.database_url == "postgresql+psycopg://u@h/db"


def test_missing_config_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CANARY_CONFIG", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "canary init" in info.value.problems[0]


def test_name_problems_are_reported_with_the_schema_problems(tmp_path):
    """One pass of validate shows a typo'd key and a duplicate id and an unknown tool together."""
    text = GOOD.replace("repeat: 2", "repeat: 2\nrepet: 3").replace("  - id: planets", "  - id: paris") \
               .replace("tools: [get_weather]", "tools: [get_wether]")
    path = write(tmp_path, "s.yaml", text)
    problems = problems_of(path)
    assert any("unknown key 'repet'" in p for p in problems)
    assert any("duplicate case id 'paris'" in p for p in problems)
    assert any("unknown tool 'get_wether'" in p for p in problems)


def test_a_case_id_or_tool_name_that_is_not_text_is_a_problem_not_a_crash(tmp_path):
    """The cross-checks read the raw file: a mapping where an id or a tool name belongs once
    raised TypeError (unhashable) out of `canary validate`."""
    text = GOOD.replace("  - id: planets", "  - id: {planets: 1}").replace("  - name: get_weather", "  - name: [get_weather]")
    path = write(tmp_path, "s.yaml", text)
    problems = problems_of(path)
    assert f"{path}:4: name: Input should be a valid string" in problems
    assert f"{path}:21: id: Input should be a valid string" in problems
    text = GOOD.replace("    prompt: Weather in Paris?", "    prompt: Weather in Paris?\n    1: one")
    assert f"{path}:13: unknown key '1' (check its spelling)" in problems_of(write(tmp_path, "s.yaml", text))


def test_json_schemas_are_checked_in_full_unless_the_command_only_reads(tmp_path):
    """A tool's parameters and an is-json value are checked against the JSON Schema metaschema
    where a suite is sent or scored (run, validate, the daemon), each at its line; the read
    commands (schemas=False) check only that each is a mapping, and read the suite."""
    text = GOOD.replace("      type: object\n      properties: {city: {type: string}}",
                        "      type: objekt\n      properties: {city: {type: string}}") \
               .replace("{type: icontains, value: mercury}", "{type: is-json, value: {type: 12}}")
    path = write(tmp_path, "s.yaml", text)
    assert problems_of(path) == [
        f"{path}:6: parameters: not a valid JSON Schema: 'objekt' is not valid under any of the given schemas",
        f"{path}:27: assert: value is not a valid JSON Schema: 12 is not valid under any of the given schemas"]
    assert load_suite(path, schemas=False).tools[0].parameters["type"] == "objekt"
    suites, problems = load_suites(tmp_path, schemas=False)
    assert list(suites) == ["weather"] and problems == []
    text = GOOD.replace("{type: icontains, value: mercury}", "{type: is-json, value: [object]}")
    assert problems_of(write(tmp_path, "s.yaml", text)) == [
        f"{path}:27: assert: value is not a valid JSON Schema: ['object'] is not of type 'object', 'boolean'"]


def test_an_endless_duration_and_a_yaml_boolean_key_are_problems_with_their_lines(tmp_path):
    """`lease: .inf` once raised OverflowError out of validate, and `jitter: -5` was read as a
    negative duration (`-5s` was refused); `on:` is a boolean key in YAML."""
    path = write(tmp_path, "canary.yaml", """\
        daemon:
          lease: .inf
          catch_up: 99999999999d
          jitter: -5
        on: true
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}:3: catch_up: '99999999999d' is longer than a duration can be",
        f"{path}:2: lease: 'inf' is not a duration (like 90s, 15m, 24h, 7d)",
        f"{path}:4: jitter: '-5' is not a duration (like 90s, 15m, 24h, 7d)",
        f"{path}:5: a key YAML reads as true: on, off, yes and no are booleans in YAML (quote the key)"]
