"""Hostile replies, end to end: the simulated model (sim_faults.py) sends what an API sends on
its bad days, the official SDKs read it over loopback, and the run goes on, storing every
sample on SQLite and PostgreSQL with the right verdict or error class."""
from __future__ import annotations

import asyncio
import json
import textwrap
from datetime import datetime

import pytest

from canary import bounded, monitor
from canary.config import load_config
from canary.runner import endpoint_factory, jobs_for, run_jobs
from canary.sim import SimServer
from canary.store import Store
from canary.suites import load_suites

SLOT = datetime(2026, 11, 2, 6, 0)

SUITE = """\
suite: hostile
tools:
  - name: get_weather
    description: Current weather for a city
    parameters: {type: object, properties: {city: {type: string}}, required: [city]}
cases:
  - id: arithmetic
    system: "Finish with a final line ANSWER: <number>."
    prompt: What is 17 * 23?
    answer: {regex: '(?m)^ANSWER:[ \\t]*([^\\n]*)'}
    assert: [{type: number, value: 391}]
    reference: {text: "17 * 23 = 391.\\nANSWER: 391"}
  - id: weather
    prompt: Weather in Paris?
    tools: [get_weather]
    tool_results: {get_weather: {temp_c: 18}}
    assert:
      - {type: tool-call, value: {name: get_weather, arguments: {city: Paris}}}
      - {type: icontains, value: "18"}
    reference:
      tool_calls: [{name: get_weather, arguments: {city: Paris}}]
      text: It is 18 C in Paris.
  - id: "<!channel> & <@U024BE7LH>"
    prompt: Name the largest planet.
    assert: [{type: icontains, value: jupiter}]
    reference: {text: Jupiter.}
"""


@pytest.fixture
def workspace(tmp_path, db_url):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "hostile.yaml").write_text(SUITE)
    (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
        database: {db_url}
        models:
          - {{name: claude, provider: anthropic, model: claude-opus-4-7, max_retries: 0}}
          - {{name: gpt, provider: openai, model: gpt-5.1, max_retries: 0}}
        detection: {{min_history: 2, window: 2, confirm: false}}
        """))
    config = load_config(tmp_path / "canary.yaml")
    suites, problems = load_suites(tmp_path / "prompts")
    assert problems == []
    store = Store(config.database_url)
    yield config, suites, store
    store.close()


def run(config, suites, store, sim, *, key="sim-key", slot=SLOT, models=()):
    jobs = jobs_for(config, suites, slot=slot, repeat=1, models=models)
    return asyncio.run(run_jobs(store, jobs, provider_factory=endpoint_factory(sim.url, key)))


def samples_of(store, summaries):
    return {(s.model, r.case_id): r for s in summaries for r in store.run_samples(s.run_id)}


@pytest.mark.parametrize("fault", ["truncated_json", "not_json", "wrong_shape"])
def test_an_unreadable_answer_is_a_bad_response_error_with_its_status_and_request_id(workspace, fault):
    config, suites, store = workspace
    with SimServer(suites, fault=fault) as sim:
        summaries = run(config, suites, store, sim)
    for s in summaries:  # both wire formats, both SDKs: the run completes, every sample an error
        assert (s.status, s.passed, s.failed, s.errors) == ("complete", 0, 0, 3), s
    for row in samples_of(store, summaries).values():
        assert (row.status, row.error, row.error_status) == ("error", "bad_response", 200)
        assert row.request_id.startswith("req_") and "could not be read" in row.error_message


def test_an_empty_answer_is_an_error_never_a_failure(workspace):
    config, suites, store = workspace
    with SimServer(suites, fault="empty", fault_rate=0.34) as sim:  # one case of three
        summaries = run(config, suites, store, sim)
    for s in summaries:
        assert (s.passed, s.failed, s.errors) == (2, 0, 1), s
        assert s.pass_rate == 1.0  # the empty answer did not count against the model's quality
    errors = [r for r in samples_of(store, summaries).values() if r.status == "error"]
    assert len(errors) == 2 and all(r.error == "empty_response" and r.error_status == 200 for r in errors)
    assert all("nothing in it" in r.error_message and r.request_id for r in errors)


@pytest.mark.parametrize("fault", ["refusal", "thinking_only"])
def test_a_refusal_or_only_thinking_is_an_answer_and_is_scored(workspace, fault):
    config, suites, store = workspace
    with SimServer(suites, fault=fault) as sim:
        summaries = run(config, suites, store, sim)
    for s in summaries:
        assert (s.passed, s.failed, s.errors) == (0, 3, 0), s
    rows = samples_of(store, summaries)
    if fault == "refusal":
        assert {r.finish_reason for r in rows.values()} == {"refusal"}
        assert rows[("gpt", "weather")].turns[0]["text"] == "I can't help with that."  # OpenAI's refusal field
    else:
        assert all(r.turns[0].get("thinking") and r.turns[0]["text"] == "" for r in rows.values())


def test_a_runaway_reply_is_scored_on_its_capped_text_and_fails(workspace):
    config, suites, store = workspace
    with SimServer(suites, fault="runaway", runaway_chars=250_000) as sim:
        summaries = run(config, suites, store, sim)
    for s in summaries:
        assert (s.passed, s.failed, s.errors) == (0, 3, 0), s
    row = samples_of(store, summaries)[("claude", "arithmetic")]
    assert len(row.turns[0]["text"]) == 250_000 and row.finish_reason == "length"  # stored whole
    [verdict] = row.turns[0]["verdicts"]
    assert not verdict["passed"]
    assert verdict["explanation"].endswith("(scored on its first 100,000 of 250,000 characters)")


def test_a_catastrophic_case_regex_times_out_as_a_failed_check(tmp_path, db_url):
    """(a|aa)+$ on 60 a's and a '!' backtracks for longer than the universe is old; the check
    gives up after its time limit and fails, saying why, and the run goes on."""
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "slow.yaml").write_text(textwrap.dedent("""\
        suite: slow
        cases:
          - id: backtracks
            prompt: Say a lot of a.
            assert: [{type: regex, value: '(a|aa)+$'}]
            reference: {text: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"}
          - id: fine
            prompt: Say hello.
            assert: [{type: icontains, value: hello}]
            reference: {text: Hello!}
        """))
    (tmp_path / "canary.yaml").write_text(f"database: {db_url}\nmodels:\n  - {{name: gpt, provider: openai, model: g}}\n")
    config = load_config(tmp_path / "canary.yaml")
    suites, _ = load_suites(tmp_path / "prompts")
    store = Store(config.database_url)
    with SimServer(suites) as sim:
        [s] = run(config, suites, store, sim)
    assert (s.status, s.passed, s.failed, s.errors) == ("complete", 1, 1, 0)
    row = next(r for r in store.run_samples(s.run_id) if r.case_id == "backtracks")
    [verdict] = row.turns[0]["verdicts"]
    assert verdict == {"type": "regex", "passed": False,
                       "explanation": f"check timed out after {bounded.CHECK_TIMEOUT:g} s on a reply of 61 characters"}
    store.close()


def test_hostile_fields_are_stored_on_every_database(workspace):
    """NUL, a lone surrogate, 300-character model id and stop reason: PostgreSQL refuses all
    of them as they come, so the store makes them storable instead of failing the run."""
    config, suites, store = workspace
    with SimServer(suites, fault="hostile_fields") as sim:
        summaries = run(config, suites, store, sim)
    for s in summaries:
        assert (s.status, s.passed, s.failed, s.errors) == ("complete", 0, 3, 0), s
    row = samples_of(store, summaries)[("gpt", "weather")]
    text = row.turns[0]["text"]
    assert "\x00" not in text and "\ufffd \ufffd then nothing useful" in text and "<!channel>" in text
    assert len(row.reported_model) == 200 and row.reported_model.endswith("…")
    assert len(row.finish_reason) == 40


def test_slack_shows_control_sequences_and_never_acts_on_them(workspace):
    """Two healthy days, then a day of replies full of <!channel> and <@U...>: the quality alert
    reaches Slack (a stub on loopback) with every inserted field escaped."""
    from canary import alerts
    from slack_stub import SlackStub
    config, suites, store = workspace
    with SimServer(suites) as sim:
        for day in (1, 2):
            asyncio.run(monitor.run_and_watch(store, config, jobs_for(
                config, suites, slot=datetime(2026, 11, day, 6), repeat=4, kind="scheduled", models=["gpt"]),
                provider_factory=endpoint_factory(sim.url, "k")))
        sim.configure(fault="hostile_fields")
        with SlackStub() as slack:
            watch = asyncio.run(monitor.run_and_watch(store, config, jobs_for(
                config, suites, slot=datetime(2026, 11, 3, 6), repeat=4, kind="scheduled", models=["gpt"]),
                provider_factory=endpoint_factory(sim.url, "k"),
                notifier=alerts.WebhookNotifier(slack.url + "/services/T/B/X")))
    assert ("quality", "opened") in [(e.kind, e.action) for e in watch.events]  # (and model_changed, drift)
    bodies = [json.dumps(sent["body"], ensure_ascii=False) for sent in slack.accepted]
    assert len(bodies) == 1  # the events of one model in one run: one message
    for body in bodies:
        assert "<!channel>" not in body and "<@U024BE7LH>" not in body and "<https://evil" not in body
    [quality] = [b for b in bodies if "pass rate dropped" in b]
    assert "&lt;!channel&gt; &amp; &lt;@U024BE7LH&gt;" in quality  # the case id, shown as written
    assert "look: &lt;https://evil.example|click h" in quality  # the reply, in a failing explanation


def test_the_faults_are_knobs_of_the_simulator_and_options_of_the_command_line(tmp_path):
    from click.testing import CliRunner
    from canary.cli import main
    with pytest.raises(ValueError, match="fault must be one of"):
        SimServer({}, fault="gremlins")
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    result = CliRunner().invoke(main, ["run", "--config", str(tmp_path / "canary.yaml"), "--sim", "--model", "gpt",
                                       "--suite", "reasoning", "--repeat", "1", "--sim-fault", "empty", "--json"])
    assert result.exit_code == 3, result.output  # nothing answered: the API's fault, exit 3, not a regression
    [run] = json.loads(result.stdout)["runs"]
    assert (run["errors"], run["failed"], run["status"]) == (21, 0, "complete")
