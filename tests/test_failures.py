"""`canary failures` and what `canary run` prints after a breach, on SQLite and PostgreSQL,
against the simulated model (a real server) made to answer some cases wrong.

The simulator answers from the suite it is given: the scoring suite is right, the one the
simulator reads has wrong references for the cases we want failing. `hard` is wrong from
the first day (always failing); `capital` and `sum` break on the last day (newly failing).
"""
from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from suite_texts import CAPITAL_AND_SUM, suite
from canary import failures
from canary.cli import main
from canary.config import load_config
from canary.sim import SimServer
from canary.store import Store
from canary.suites import load_suites

T0 = datetime(2026, 11, 1, 6)

SUITE = suite("basics", 3, CAPITAL_AND_SUM) + """\
  - id: hard
    prompt: Name the smallest prime above 100.
    assert: [{type: icontains, value: "101"}]
    reference: {text: "101"}
  - id: lower
    turns:
      - user: Answer in lowercase only. Which planet is red?
        assert: [{type: icontains, value: mars}]
        reference: {text: mars.}
      - user: And the largest one?
        assert: [{type: icontains, value: jupiter}, {type: not-regex, value: "[A-Z]"}]
        reference: {text: jupiter.}
"""


def answering(wrong: dict[str, str]) -> str:
    """The suite as the simulator reads it: the given cases answer with the given text."""
    text = SUITE.replace("reference: {text: \"101\"}", f"reference: {{text: \"{wrong.get('hard', '101')}\"}}")
    if "capital" in wrong:
        text = text.replace("reference: {text: Paris}", f"reference: {{text: {wrong['capital']}}}")
    if "sum" in wrong:
        text = text.replace('reference: {text: "12 + 30 = 42\\nANSWER: 42"}',
                            f'reference: {{text: "{wrong["sum"]}"}}')
    return text


@pytest.fixture
def project(tmp_path, db_url):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "basics.yaml").write_text(SUITE)
    (tmp_path / "sim").mkdir()
    with SimServer({}) as sim:
        (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
            database: {db_url}
            models:
              - {{name: gpt, provider: openai, model: gpt-5.1, base_url: '{sim.url}/v1', api_key_env: SIM_API_KEY}}
            """))
        yield tmp_path, sim


def answer_with(tmp_path, sim, wrong: dict[str, str]) -> None:
    (tmp_path / "sim" / "basics.yaml").write_text(answering(wrong))
    suites, problems = load_suites(tmp_path / "sim")
    assert not problems
    sim.set_suites(suites)


def cli(tmp_path, *args):
    command = list(args[:1]) + ["--config", str(tmp_path / "canary.yaml")] + list(args[1:])
    return CliRunner().invoke(main, command, env={"SIM_API_KEY": "sim-key"}, catch_exceptions=False)


def healthy_days(tmp_path, sim, days: int = 6) -> None:
    answer_with(tmp_path, sim, {"hard": "97"})
    for _ in range(days):
        assert cli(tmp_path, "run").exit_code == 0


def test_run_names_the_newly_failing_cases_and_labels_the_confirmation_run(project):
    tmp_path, sim = project
    healthy_days(tmp_path, sim)
    answer_with(tmp_path, sim, {"hard": "97", "capital": "Lyon", "sum": "12 + 30 = 43\\nANSWER: 43"})
    result = cli(tmp_path, "run")
    assert result.exit_code == 1, result.output  # a regression alert was opened
    lines = result.output.splitlines()
    table = [line for line in lines if "basics" in line or "confirmation" in line]
    assert "↳ confirmation run" in table[1]  # the second row is labelled, not a duplicate of the first
    assert "gpt · basics breached: 25.0% (6/24), confirmed by a second run" in result.output
    newly = [line for line in lines if line.strip().startswith("newly failing")]
    assert [line.split()[2] for line in newly] == ["capital", "sum"]  # 6/6 failed each: by rate, then by id
    assert "number: expected 42, the answer gives 43" in result.output
    assert "hard" not in " ".join(newly) and "1 more failing case(s)" in result.output
    assert "more: canary failures --model gpt --suite basics" in result.output

    as_json = json.loads(cli(tmp_path, "run", "--json").stdout)  # in the open episode: no confirmation
    assert as_json["confirmations"] == [] and as_json["breached"][0]["cases"][0]["standing"] == "newly"


def test_failures_newly_first_with_baseline_rates_checks_answers_and_request_ids(project):
    tmp_path, sim = project
    healthy_days(tmp_path, sim)
    answer_with(tmp_path, sim, {"hard": "97", "capital": "Lyon", "sum": "12 + 30 = 43\\nANSWER: 43"})
    assert cli(tmp_path, "run").exit_code == 1

    result = cli(tmp_path, "failures", "--model", "gpt", "--json")
    assert result.exit_code == 0, result.output
    [series] = json.loads(result.stdout)["series"]
    assert series["confirmed"] and len(series["run_ids"]) == 2 and series["baseline_runs"] == 6
    assert (series["passed"], series["answered"]) == (6, 24)
    cases = {c["case"]: c for c in series["cases"]}
    assert [c["case"] for c in series["cases"]] == ["capital", "sum", "hard"]  # newly failing first
    assert (cases["capital"]["failed"], cases["capital"]["answered"]) == (6, 6)
    assert cases["capital"]["baseline_rate"] == 1.0 and cases["capital"]["standing"] == "newly"
    assert cases["hard"]["baseline_rate"] == 0.0 and cases["hard"]["standing"] == "always"
    assert cases["sum"]["check"] == "number: expected 42, the answer gives 43"
    assert cases["capital"]["check"] == 'icontains: contains "paris": no, reply "Lyon"'
    assert cases["capital"]["answer"] == "Lyon" and cases["sum"]["answer"] == "12 + 30 = 43 ANSWER: 43"
    assert len(cases["sum"]["request_ids"]) == 5 and all(r.startswith("req_") for r in cases["sum"]["request_ids"])
    assert "lower" not in cases

    text = cli(tmp_path, "failures", "--model", "gpt").output
    assert "pooled with its confirmation run" in text and "baseline 6 runs" in text
    assert text.index("capital") < text.index("sum") < text.index("always failing")
    assert "newly failing  capital  6/6 failed, 100.0% passed in the baseline" in text
    assert "(+2 in --json)" in text  # 5 request ids kept, 3 shown


def test_failures_of_an_earlier_run_since_a_date_and_outside_the_series(project, db_url):
    tmp_path, sim = project
    healthy_days(tmp_path, sim, days=3)
    config = load_config(tmp_path / "canary.yaml")
    store = Store(config.database_url)
    first = store.series("gpt", "basics")[0].id
    [f] = failures.model_failures(store, config, "gpt", run_id=first)
    assert f.run_ids == [first] and f.baseline_runs == 0 and "no baseline" in f.note
    assert [(c.case, c.standing) for c in f.cases] == [("hard", "no_baseline")]

    [pooled] = failures.model_failures(store, config, "gpt", since=datetime(2000, 1, 1))
    assert len(pooled.slots) == 3 and pooled.cases[0].failed == 9 and pooled.cases[0].answered == 9

    assert cli(tmp_path, "ack", "--model", "gpt", "--suite", "basics").exit_code == 0
    assert cli(tmp_path, "run").exit_code == 0
    [old] = failures.model_failures(store, config, "gpt", run_id=first)  # before the ack: not in the series
    assert "outside the series" in old.note and old.cases[0].standing == "no_baseline"
    store.close()

    bad = cli(tmp_path, "failures", "--model", "gpt", "--run", "99999")
    assert bad.exit_code == 2 and "is not a run of gpt" in bad.output
    both = cli(tmp_path, "failures", "--model", "gpt", "--run", str(first), "--since", "2026-01-01")
    assert both.exit_code == 2 and "not both" in both.output
    unknown = cli(tmp_path, "failures", "--model", "nobody")
    assert unknown.exit_code == 2 and "unknown model" in unknown.output


def test_standing_of_a_failing_case():
    assert failures.standing(9, 9) == "newly" and failures.standing(27, 30) == "newly"
    assert failures.standing(20, 30) == "often" and failures.standing(0, 30) == "always"
    assert failures.standing(0, 0) == "no_baseline"
    assert failures.standing(2, 30) == "always"  # at most 10%: the same word Slack's message uses
    from canary.caselevel import CaseChange
    assert [CaseChange("c", 0, 3, *b).kind for b in ((27, 30), (20, 30), (2, 30), (0, 0))] == \
        ["newly_failing", "flaky", "always_failing", "no_baseline"]


def test_answers_in_one_line_and_tool_calls_in_words():
    assert failures.one_line("a\n\n b  c") == "a b c"
    assert failures.one_line("x" * 300).endswith("…") and len(failures.one_line("x" * 300)) == failures.ANSWER_CHARS
    turn = {"text": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]}
    assert failures.answer_of(turn) == "called get_weather(city='Paris', days=2)"
    turns = [{"verdicts": [{"type": "contains", "passed": True, "explanation": "ok"}]},
             {"verdicts": [{"type": "number", "passed": False, "explanation": "expected 1, the answer gives 2"}]}]
    assert failures.failed_checks(turns) == ["turn 2: number: expected 1, the answer gives 2"]
    assert failures.failing_turn(turns) == 1


# --- the store's reads behind it, on both databases ---------------------------------------------

def _run(store, slot, statuses, cost=0.01):
    run_id = store.create_run(model="m", suite="s", suite_version="v", slot=slot, kind="scheduled",
                              planned=len(statuses), owner=None, now=slot)
    store.insert_samples([{"run_id": run_id, "case_id": case, "sample": i, "status": status,
                           "request_id": f"req_{run_id}_{case}_{i}", "input_tokens": 1, "output_tokens": 1,
                           "cost": cost, "turns": [{"text": f"{run_id}/{case}/{i}", "verdicts": []}],
                           "finished_at": slot} for i, (case, status) in enumerate(statuses)])
    store.finish_run(run_id, "complete", slot)
    return run_id


def test_store_failed_samples_latest_per_case_costs_and_episodes(store):
    a = _run(store, T0, [("x", "failed"), ("x", "passed"), ("y", "failed")])
    b = _run(store, T0 + timedelta(days=1), [("x", "failed"), ("x", "failed"), ("y", "error")], cost=0.02)
    rows = store.failed_samples([a, b])
    assert [(r.run_id, r.case_id, r.sample) for r in rows] == [(b, "x", 0), (b, "x", 1), (a, "x", 0), (a, "y", 2)]
    assert rows[0].request_id == f"req_{b}_x_0" and rows[0].turns[0]["text"] == f"{b}/x/0"
    latest = store.latest_samples({"x": [a, b], "y": [a, b]}, "failed")
    assert (latest["x"].run_id, latest["x"].sample) == (b, 1) and latest["y"].run_id == a
    assert store.latest_samples({"x": []}, "failed") == {} and store.latest_samples({}, "failed") == {}
    from canary import series
    costs = [p.cost for p in series.points(store, "m", "s", cases=False)]  # each point carries its run's cost
    assert costs == [pytest.approx(0.03), pytest.approx(0.06)]
    from canary import alerts
    alerts.open_alert(store, model="m", suite="s", kind="quality", run_id=b, details={"reason": "r"},
                      message={"text": "t"}, now=T0)
    [episode] = store.alert_episodes()
    assert (episode.model, episode.kind, episode.opened_run_id, episode.state) == ("m", "quality", b, "open")
