"""`canary calibrate` against the simulated model, and from stored history on both databases."""
from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from canary import calibrate, series
from canary.cli import main
from canary.config import load_config
from canary.store import Store
from canary.suites import load_suite
from test_daemon import BASICS

SUITE = BASICS.replace("repeat: 2", "repeat: 3")  # three cases the simulated model answers


def project(tmp_path, db_url: str = "sqlite:///canary.db"):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "basics.yaml").write_text(SUITE)
    (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
        database: {db_url}
        models:
          - {{name: gpt, provider: openai, model: gpt-5.1, price: {{input: 2.0, output: 10.0}}}}
        """))
    return tmp_path / "canary.yaml"


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_calibrate_runs_each_case_against_the_simulator(tmp_path):
    config = project(tmp_path)
    out = cli("calibrate", "--config", str(config), "--model", "gpt", "--sim", "--samples", "4",
              "--series-years", "3", "--trials", "40", "--json")
    assert out.exit_code == 0, out.output
    [cal] = json.loads(out.stdout)["suites"]
    # the simulated model answers every case right: each passes 4 of 4, and is marked as such
    assert [(c["case"], c["passed"], c["answered"]) for c in cal["cases"]] == [
        ("capital", 4, 4), ("planet", 4, 4), ("sum", 4, 4)]
    assert {c["note"] for c in cal["cases"]} == {"always passes: catches only a total break"}
    assert [r["repeat"] for r in cal["table"]] == [1, 3, 5]
    for row in cal["table"]:
        assert 0 <= row["drop_caught"] <= 1 and row["false_alarms"] >= 0 and row["team"] == 15 * row["false_alarms"]
        assert row["tokens_per_day"] > 0 and row["cost_per_day"] > 0  # price is set
        assert row["break_caught"] is not None  # 3 reliable cases
    costs = [r["cost_per_day"] for r in cal["table"]]
    assert costs[1] == pytest.approx(costs[0] * 3) and costs[2] == pytest.approx(costs[0] * 5)  # x repeat
    assert cal["source"] == "calibrate run (4 samples per case)"

    # the calibrate run is stored but never enters a baseline, and status shows what was cached
    store = Store(f"sqlite:///{tmp_path / 'canary-sim.db'}")
    assert [r.kind for r in store.series("gpt", "basics", kinds=("calibrate",))] == ["calibrate"]
    assert series.points(store, "gpt", "basics") == []
    store.close()
    status = json.loads(cli("status", "--config", str(config), "--sim", "--json").stdout)
    [row] = status["series"]
    assert row["catches_simulated"] and row["catches"] == cal["min_drop"]

    human = cli("calibrate", "--config", str(config), "--model", "gpt", "--sim", "--sim-wrong-rate", "0.5",
                "--samples", "6", "--series-years", "2", "--trials", "20")
    assert human.exit_code == 0, human.output
    assert "pass rate per case" in human.output and "false alarms" in human.output


def test_calibrate_from_stored_history(tmp_path, db_url):
    config = load_config(project(tmp_path, db_url))
    suite = load_suite(tmp_path / "prompts" / "basics.yaml")
    store = Store(config.database_url)
    t0 = datetime(2026, 11, 1, 6)
    for d in range(6):  # capital always passes, sum 2 of 3, planet never
        run_id = store.create_run(model="gpt", suite="basics", suite_version=suite.version, slot=t0 + timedelta(days=d),
                                  kind="scheduled", planned=9, owner=None, now=t0)
        store.insert_samples([
            {"run_id": run_id, "case_id": case, "sample": i, "status": "passed" if ok else "failed",
             "input_tokens": 100, "output_tokens": 20, "turns": [], "finished_at": t0}
            for case, passes in (("capital", 3), ("sum", 2), ("planet", 0)) for i in range(3)
            for ok in [i < passes]])
        store.finish_run(run_id, "complete", t0)
    cal = calibrate.from_history(store, config, "gpt", suite)
    assert cal.source == "stored history (6 runs)"
    assert [(c.case, c.passed, c.answered, c.note) for c in cal.cases] == [
        ("capital", 18, 18, "always passes: catches only a total break"),
        ("planet", 0, 18, "always fails: no signal"),
        ("sum", 12, 18, "flaky: mostly noise")]
    assert (cal.input_tokens, cal.output_tokens) == (100, 20)
    calibrate.simulate(cal, config, config.models[0], series_years=2, trials=20)
    assert [r.break_caught for r in cal.table] == [None] * 3  # fewer than 3 reliable cases to break
    assert cal.recommended in (1, 3, 5)  # always one: the smallest meeting the targets, or the closest
    assert cal.meets_targets == cal.table[[1, 3, 5].index(cal.recommended)].meets_targets
    # 9 samples a day at 100 in and 20 out, $2 and $10 per million: 9 x 0.0004 = $0.0036 at repeat 3
    assert cal.table[1].cost_per_day == pytest.approx(0.0036)
    calibrate.cache_min_drop(store, cal, config, config.models[0], suite, t0)
    [cached] = store.sensitivities().values()
    assert (cached.model, cached.suite, cached.source, cached.min_drop) == ("gpt", "basics", "calibrate", cal.min_drop)
    store.close()
