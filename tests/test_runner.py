"""Runs end to end through the official SDKs against the simulated model on loopback."""
from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime

import pytest

from canary.config import load_config
from canary.runner import endpoint_factory, jobs_for, run_jobs
from canary.sim import SimServer
from canary.store import Store
from canary.suites import load_suites

SLOT = datetime(2026, 11, 2, 6, 0)

SUITE = """\
suite: mixed
repeat: 2
tools:
  - name: get_weather
    description: Current weather for a city
    parameters:
      type: object
      properties: {city: {type: string}, unit: {type: string, enum: [celsius, fahrenheit]}}
      required: [city]
cases:
  - id: weather-paris
    system: You are a weather assistant.
    prompt: What's the weather in Paris, in celsius?
    tools: [get_weather]
    tool_results: {get_weather: {temp_c: 18, sky: cloudy}}
    assert:
      - {type: tool-call, value: {name: get_weather, arguments: {city: Paris, unit: celsius}}}
      - {type: icontains, value: "18"}
    reference:
      tool_calls: [{name: get_weather, arguments: {city: Paris, unit: celsius}}]
      text: It is 18 °C and cloudy in Paris.
  - id: lowercase-persists
    turns:
      - user: From now on answer in lowercase only. Name the largest planet.
        assert: [{type: icontains, value: jupiter}, {type: not-regex, value: "[A-Z]"}]
        reference: {text: "jupiter is the largest planet."}
      - user: And the smallest?
        assert: [{type: icontains, value: mercury}, {type: not-regex, value: "[A-Z]"}]
        reference: {text: "mercury is the smallest."}
  - id: arithmetic
    prompt: "What is 17 * 23? End with a line ANSWER: <number>."
    answer: {regex: "ANSWER:\\\\s*(\\\\S+)"}
    assert: [{type: number, value: 391}]
    reference: {text: "17 * 23 = 391.\\nANSWER: 391"}
"""


@pytest.fixture
def workspace(tmp_path, db_url):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "mixed.yaml").write_text(SUITE)
    (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
        database: {db_url}
        models:
          - name: claude
            provider: anthropic
            model: claude-opus-4-7
            params: {{max_tokens: 256, output_config: {{effort: high}}, custom_flag: 1}}
            price: {{input: 5.0, output: 25.0}}
          - name: gpt
            provider: openai
            model: gpt-5.1
            params: {{max_completion_tokens: 256}}
            concurrency: 4
        """))
    config = load_config(tmp_path / "canary.yaml")
    suites, problems = load_suites(tmp_path / "prompts")
    assert problems == []
    store = Store(config.database_url)
    yield config, suites, store
    store.close()


def run(config, suites, store, sim, *, repeat=None, slot=SLOT, models=()):
    jobs = jobs_for(config, suites, slot=slot, repeat=repeat, models=models)
    return asyncio.run(run_jobs(store, jobs, provider_factory=endpoint_factory(sim.url, "sim-key")))


def test_both_providers_pass_a_correct_model(workspace):
    config, suites, store = workspace
    with SimServer(suites) as sim:
        summaries = run(config, suites, store, sim)
    assert [(s.model, s.passed, s.failed, s.errors) for s in summaries] == [("claude", 6, 0, 0), ("gpt", 6, 0, 0)]
    rows = {(r.case_id, r.sample): r for r in store.run_samples(summaries[0].run_id)}
    weather = rows[("weather-paris", 0)]
    assert weather.turns[0]["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]
    assert "18" in weather.turns[0]["text"] and weather.finish_reason == "stop"
    assert weather.reported_model == "claude-opus-4-7" and weather.request_id
    assert weather.input_tokens > 0 and weather.output_tokens > 0 and weather.cost > 0
    planets = rows[("lowercase-persists", 1)]
    assert [t["text"] for t in planets.turns] == ["jupiter is the largest planet.", "mercury is the smallest."]
    assert all(v["passed"] for t in planets.turns for v in t["verdicts"])


def test_params_are_sent_as_written_and_nothing_else(workspace):
    config, suites, store = workspace
    with SimServer(suites) as sim:
        run(config, suites, store, sim, repeat=1)
        bodies = list(sim.requests)
    anthropic = [b for path, b in bodies if path == "/v1/messages"]
    openai = [b for path, b in bodies if path == "/v1/chat/completions"]
    assert anthropic and openai
    for body in anthropic:
        assert body["max_tokens"] == 256 and body["custom_flag"] == 1 and body["output_config"] == {"effort": "high"}
        assert "temperature" not in body and "top_p" not in body
    tool_turn = next(b for b in anthropic if b.get("tools"))
    assert tool_turn["tools"][0]["input_schema"]["required"] == ["city"]
    # the second call of a tool case carries the canned result back as a tool_result block
    followup = next(b for b in anthropic if any(isinstance(m["content"], list) and
                                                 m["content"][0].get("type") == "tool_result" for m in b["messages"]))
    result = [m for m in followup["messages"] if isinstance(m["content"], list)][-1]["content"][0]
    assert '"temp_c": 18' in result["content"]
    for body in openai:
        assert body["max_completion_tokens"] == 256 and "temperature" not in body


def test_wrong_answers_are_failures_and_multi_turn_replies_stay_in_the_conversation(workspace):
    config, suites, store = workspace
    with SimServer(suites, wrong_rate=0.3, seed=7) as sim:
        [s] = run(config, suites, store, sim, repeat=20, models=["gpt"])
        second_turns = [b for _p, b in sim.requests if len([m for m in b["messages"] if m["role"] == "user"]) == 2]
    assert s.errors == 0 and s.passed + s.failed == 60
    assert 0.55 <= s.pass_rate <= 0.85, s.pass_rate  # 30% of samples answered wrong
    # turn 2 of the multi-turn case carries the model's own first reply, whatever it was
    assert second_turns and all(b["messages"][1]["role"] == "assistant" for b in second_turns)


def test_overloaded_is_an_error_not_a_failure(workspace):
    config, suites, store = workspace
    with SimServer(suites, error_rate=0.34, seed=3) as sim:  # one case of three always answers 529
        [s] = run(config, suites, store, sim, repeat=4, models=["claude"])
        attempts = len(sim.requests)
    assert s.errors == 4 and s.failed == 0 and s.passed == 8
    assert s.pass_rate == 1.0 and abs(s.error_rate - 4 / 12) < 1e-9
    errors = [r for r in store.run_samples(s.run_id) if r.status == "error"]
    assert {(r.error, r.error_status) for r in errors} == {("overloaded", 529)}
    assert all(r.request_id and r.request_id.startswith("req_") for r in errors)
    assert "overloaded" in errors[0].error_message.lower()
    assert attempts >= 4 * 3  # each errored sample was tried 1 + max_retries (2) times by the SDK


def test_flaky_calls_are_retried_by_the_sdk(workspace):
    config, suites, store = workspace
    with SimServer(suites, flaky_rate=0.2, seed=1) as sim:
        [s] = run(config, suites, store, sim, repeat=5, models=["gpt"])
    assert s.errors == 0 and s.passed == 15


def test_a_slot_runs_once_and_an_interrupted_run_resumes_its_missing_samples(workspace):
    config, suites, store = workspace
    with SimServer(suites) as sim:
        [first] = run(config, suites, store, sim, models=["gpt"])
        [again] = run(config, suites, store, sim, models=["gpt"])  # same slot: nothing runs
        assert again.run_id == first.run_id
        n = len(sim.requests)
        # simulate a crash: drop two samples and mark the run interrupted, then run the slot again
        from sqlalchemy import delete, update
        from canary.schema import runs, samples
        with store.begin() as conn:
            conn.execute(delete(samples).where(samples.c.run_id == first.run_id, samples.c.case_id == "arithmetic"))
            conn.execute(update(runs).where(runs.c.id == first.run_id).values(status="interrupted"))
        [resumed] = run(config, suites, store, sim, models=["gpt"])
        assert len(sim.requests) == n + 2  # only the two missing samples were asked again
    assert resumed.run_id == first.run_id and resumed.passed == 6 and resumed.status == "complete"


def test_thinking_is_kept_but_not_scored(workspace):
    config, suites, store = workspace
    with SimServer(suites, thinking=True) as sim:
        [s] = run(config, suites, store, sim, repeat=1, models=["claude"])
    assert s.passed == 3
    rows = store.run_samples(s.run_id)
    assert all(t.get("thinking") for r in rows for t in r.turns)
    assert all(t["thinking"] not in t["text"] for r in rows for t in r.turns)  # scored on the text only


def test_no_key_in_the_database(workspace):
    config, suites, store = workspace
    with SimServer(suites) as sim:
        run(config, suites, store, sim, repeat=1)
    from canary.transfer import export_lines
    dump = "".join(export_lines(store))
    assert "sim-key" not in dump


def test_a_replica_that_lost_its_run_stops_and_leaves_it_to_the_new_owner(workspace):
    """Its heartbeat finds another owner (who judged it stale): it takes no new sample."""
    from datetime import timedelta
    from sqlalchemy import update
    from canary.runner import Control
    from canary.schema import runs
    config, suites, store = workspace
    seen = []

    def on_sample(job, row):
        seen.append(row)
        if len(seen) == 3:  # another replica takes the run over
            with store.begin() as conn:
                conn.execute(update(runs).where(runs.c.id == row["run_id"]).values(owner="replica-b"))

    control = Control(lease=timedelta(seconds=0.2))  # heartbeat every 50 ms
    with SimServer(suites, latency=0.05) as sim:
        jobs = jobs_for(config, suites, slot=SLOT, repeat=20, models=["gpt"])
        [s] = asyncio.run(run_jobs(store, jobs, control=control, on_sample=on_sample,
                                   provider_factory=endpoint_factory(sim.url, "k")))
    assert s.status == "running"  # not closed by the replica that lost it
    assert store.run(s.run_id).owner == "replica-b"
    assert 3 <= len(store.done_samples(s.run_id)) < 60
