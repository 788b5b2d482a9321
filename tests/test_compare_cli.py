"""`canary compare` as a rollout meets it: against the simulated model through the official SDKs
(fresh runs), and on stored history (paired by case across days, one suite version)."""
from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from canary import series
from canary import monitor, reports
from canary.cli import main
from canary.comparison import parse_since
from canary.config import load_config
from canary.slots import abandoned_runs
from canary.store import Store
from canary.suites import load_suites

MODELS = """\
database: sqlite:///canary.db
models:
  - {name: opus-4.7, provider: anthropic, model: claude-opus-4-7, params: {max_tokens: 2048}, price: {input: 5.0, output: 25.0}, repeat: 3}
  - {name: opus-4.8, provider: anthropic, model: claude-opus-4-8, params: {max_tokens: 2048}, price: {input: 5.0, output: 25.0}, repeat: 3}
  - {name: opus-4.8-low, provider: anthropic, model: claude-opus-4-8, params: {max_tokens: 2048, output_config: {effort: low}}, price: {input: 5.0, output: 25.0}}
  - {name: gpt, provider: openai, model: gpt-5.1, params: {max_completion_tokens: 2048}, price: {input: 1.25, output: 10.0}}
"""
TINY = """\
suite: tiny
cases:
  - {id: tiny-a, prompt: Name the largest planet., assert: [{type: icontains, value: jupiter}], reference: {text: Jupiter.}}
  - {id: tiny-b, prompt: Name the smallest planet., assert: [{type: icontains, value: mercury}], reference: {text: Mercury.}}
  - id: "<b>tiny-html</b>"
    prompt: Quote the tag that starts a script.
    assert: [{type: contains, value: "<script>"}]
    reference: {text: "It is <script>alert(1)</script>"}
"""
BROKEN = ["printers-and-posters", "farmer-and-goat", "pen-and-notebook"]


@pytest.fixture
def project(tmp_path):
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    (tmp_path / "canary.yaml").write_text(MODELS)
    (tmp_path / "prompts" / "tiny.yaml").write_text(TINY)
    return tmp_path


def canary(project, *args, env=None):
    return CliRunner().invoke(main, [args[0], "--config", str(project / "canary.yaml"), *args[1:]], env=env or {})


def test_a_candidate_that_broke_three_cases_is_worse_with_exactly_those_regressed(project):
    breaks = [x for case in BROKEN for x in ("--sim-break", case)]
    result = canary(project, "compare", "opus-4.7", "opus-4.8", "--fresh", "--sim", "--suite", "reasoning", *breaks,
                    "--json", "--out", str(project / "page.html"))
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    [suite] = data["suites"]
    assert data["verdict"] == suite["verdict"] == "worse" and data["exit_code"] == 1
    assert sorted(d["case"] for d in suite["regressed"]) == sorted(BROKEN) and suite["improved"] == []
    for d in suite["regressed"]:
        assert (d["a_passed"], d["a_answered"], d["b_passed"], d["b_answered"], d["flipped"]) == (3, 3, 0, 3, True)
        assert d["failed_checks"] and d["a"][0]["text"] and d["b"][0]["text"] != d["a"][0]["text"]
    assert suite["difference"] == pytest.approx(-3 / 21) and suite["difference_high"] < 0 and suite["p_value"] < 0.01
    for key in ("pass_rate", "pass_rate_low", "pass_rate_high", "tokens_per_pass", "cost_per_pass", "latency_p50_ms",
                "error_share", "errors", "runs"):
        assert key in suite["a"] and key in suite["b"]
    assert suite["a"]["pass_rate"] == 1.0 and suite["b"]["pass_rate"] == pytest.approx(18 / 21)
    page = (project / "page.html").read_text()
    assert "printers-and-posters" in page and page.count("<svg") == 3 and "worse" in page


def test_the_same_model_at_a_lower_effort_answering_with_fewer_tokens_is_no_worse_and_cheaper(project):
    result = canary(project, "compare", "opus-4.8", "opus-4.8-low", "--fresh", "--sim", "--suite", "reasoning",
                    "--repeat", "5", "--sim-token-scale", "0.65", "--json")
    assert result.exit_code == 0, result.output
    [suite] = json.loads(result.stdout)["suites"]
    assert suite["verdict"] in ("no_worse", "better") and suite["regressed"] == []
    a, b = suite["a"], suite["b"]
    assert (a["passed"], a["answered"], b["passed"], b["answered"]) == (105, 105, 105, 105)
    assert 0.6 < b["tokens_per_pass"] / a["tokens_per_pass"] < 0.7
    assert b["cost_per_pass"] < a["cost_per_pass"]
    assert "less per correct answer" in suite["summary"]
    # fresh runs are runs of kind compare, in the simulator's database
    store = Store(f"sqlite:///{project / 'canary-sim.db'}")
    runs = [run for run, _samples in store.export_runs()]
    assert {(r.model, r.kind) for r in runs} == {("opus-4.8", "compare"), ("opus-4.8-low", "compare")}
    assert store.latest_runs() == [] and series.points(store, "opus-4.8", "reasoning") == []
    store.close()


def test_one_miss_on_a_small_suite_is_inconclusive_and_says_how_many_samples_would_settle_it(project):
    args = ["compare", "opus-4.7", "opus-4.8", "--fresh", "--sim", "--suite", "tiny", "--repeat", "1",
            "--sim-break", "tiny-b"]
    result = canary(project, *args, "--json", "--out", str(project / "tiny.html"))
    assert result.exit_code == 4, result.output
    data = json.loads(result.stdout)
    [suite] = data["suites"]
    assert data["verdict"] == "inconclusive" and [d["case"] for d in suite["regressed"]] == ["tiny-b"]
    assert suite["difference_low"] < -0.05 and suite["difference_high"] > 0
    assert isinstance(suite["more_samples_per_case"], int) and suite["more_samples_per_case"] > 0
    human = canary(project, *args)
    assert human.exit_code == 4
    assert f"about {suite['more_samples_per_case']} more samples per case" in human.output
    assert "It cannot be told yet whether opus-4.8 is worse than opus-4.7 on tiny" in human.output


def test_the_page_escapes_what_models_and_suites_say(project):
    result = canary(project, "compare", "opus-4.7", "opus-4.8", "--fresh", "--sim", "--suite", "tiny", "--repeat",
                    "1", "--sim-break", "<b>tiny-html</b>", "--out", str(project / "page.html"))
    assert result.exit_code == 4, result.output
    page = (project / "page.html").read_text()
    assert "&lt;b&gt;tiny-html&lt;/b&gt;" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page and "<b>tiny" not in page
    assert "http://" not in page and "https://" not in page  # self-contained: nothing fetched


def test_usage_errors_exit_2_without_a_traceback(project):
    for args, message in [
        (["opus-4.7", "opus-4.7"], "two different models"),
        (["opus-4.7", "opus-4.8", "--fresh", "--since", "3d"], "give one of them"),
        (["opus-4.7", "opus-4.8", "--repeat", "3"], "--repeat goes with --fresh"),
        (["opus-4.7", "opus-4.8", "--sim-break", "tiny-a"], "go with --sim --fresh"),
        (["opus-4.7", "opus-4.8", "--since", "last tuesday"], "neither a duration"),
        (["opus-4.7", "nope"], "unknown model 'nope'"),
        (["opus-4.7", "opus-4.8", "--fresh", "--sim", "--sim-break", "no-such-case"], "no suite has a case"),
        (["opus-4.7", "opus-4.8", "--suite", "nope"], "unknown suite 'nope'"),
    ]:
        result = canary(project, "compare", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


def test_fresh_runs_that_answer_nothing_exit_3(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "tiny.yaml").write_text(TINY)
    (tmp_path / "canary.yaml").write_text(textwrap.dedent("""\
        models:
          - {name: a, provider: anthropic, model: m1, base_url: "http://127.0.0.1:9", max_retries: 0, timeout: 2}
          - {name: b, provider: anthropic, model: m2, base_url: "http://127.0.0.1:9", max_retries: 0, timeout: 2}
        """))
    result = canary(tmp_path, "compare", "a", "b", "--fresh", "--repeat", "1", "--json",
                    env={"ANTHROPIC_API_KEY": "test-key"})
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == "inconclusive" and data["suites"][0]["a"]["errors"] == 3


# --- stored history --------------------------------------------------------------------------------

SUITE = """\
suite: s
cases:
""" + "".join(f"  - {{id: c{i}, prompt: q{i}, assert: [{{type: contains, value: a{i}}}], reference: {{text: a{i}}}}}\n"
              for i in range(4))
DAY = datetime(2026, 11, 2, 6)


def add_run(store, model, slot, failing=(), *, kind="scheduled", version, errors=()):
    run_id = store.create_run(model=model, suite="s", suite_version=version, slot=slot, kind=kind, planned=4,
                              owner=None, now=slot)
    store.insert_samples([{
        "run_id": run_id, "case_id": f"c{i}", "sample": 0,
        "status": "error" if f"c{i}" in errors else "failed" if f"c{i}" in failing else "passed",
        "input_tokens": 10, "output_tokens": 20, "latency_ms": 100.0, "finished_at": slot,
        "turns": [{"user": f"q{i}", "text": "nope" if f"c{i}" in failing else f"a{i}", "verdicts": [
            {"type": "contains", "passed": f"c{i}" not in failing, "explanation": f'contains "a{i}": no'}]}]}
        for i in range(4)])
    store.finish_run(run_id, "complete", slot)
    return run_id


def test_stored_runs_pair_by_case_across_days_and_ignore_other_suite_versions(tmp_path, db_url):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "s.yaml").write_text(SUITE)
    (tmp_path / "canary.yaml").write_text(f"database: {db_url}\nmodels:\n"
                                          "  - {name: a, provider: openai, model: x}\n"
                                          "  - {name: b, provider: openai, model: y}\n")
    suites, _ = load_suites(tmp_path / "prompts")
    version = suites["s"].version
    store = Store(db_url)
    # A ran on days 1 and 2, B on days 3 and 4: B fails c0 both days
    add_run(store, "a", DAY, version=version)
    add_run(store, "a", DAY + timedelta(days=1), version=version, errors={"c3"})
    add_run(store, "b", DAY + timedelta(days=2), failing={"c0"}, version=version)
    add_run(store, "b", DAY + timedelta(days=3), failing={"c0"}, version=version)
    # none of these may count: another suite version, a confirmation run, a run before --since
    for d in range(4):
        add_run(store, "b", DAY + timedelta(days=d, hours=2), failing={"c0", "c1", "c2", "c3"}, version="older")
    add_run(store, "a", DAY + timedelta(days=1), failing={"c1", "c2"}, kind="confirm", version=version)
    add_run(store, "b", DAY - timedelta(days=1), version=version)
    store.close()

    result = canary(tmp_path, "compare", "a", "b", "--since", "2026-11-02", "--json")
    assert result.exit_code == 4, result.output  # 4 cases, 2 samples each: too few to judge
    [suite] = json.loads(result.stdout)["suites"]
    assert (suite["a"]["runs"], suite["b"]["runs"]) == (2, 2)
    assert (suite["a"]["passed"], suite["a"]["answered"], suite["a"]["errors"]) == (7, 7, 1)
    assert (suite["b"]["passed"], suite["b"]["answered"], suite["b"]["errors"]) == (6, 8, 0)
    assert suite["cases"] == 4 and suite["unpaired"] == []
    [regressed] = suite["regressed"]
    assert (regressed["case"], regressed["a_passed"], regressed["b_passed"], regressed["flipped"]) == ("c0", 2, 0, True)
    assert regressed["failed_checks"] == ['contains: contains "a0": no'] and regressed["b"][0]["text"] == "nope"
    assert suite["difference"] == pytest.approx(-0.25)  # c0: 1 - 0; the other cases 1 - 1
    # a window that starts later sees only B's days: nothing of A to pair with
    later = json.loads(canary(tmp_path, "compare", "a", "b", "--since", "2026-11-04", "--json").stdout)
    assert later["suites"][0]["cases"] == 0 and any("no stored runs of a" in n for n in later["notes"])


def test_compare_runs_never_enter_a_series_or_a_baseline(tmp_path, db_url):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "s.yaml").write_text(SUITE)
    (tmp_path / "canary.yaml").write_text(f"database: {db_url}\nmodels:\n  - {{name: a, provider: openai, model: x}}\n")
    config = load_config(tmp_path / "canary.yaml")
    suites, _ = load_suites(tmp_path / "prompts")
    version = suites["s"].version
    store = Store(db_url)
    for d in range(6):
        add_run(store, "a", DAY + timedelta(days=d), version=version)
        add_run(store, "a", DAY + timedelta(days=d, hours=1), failing={"c0", "c1", "c2", "c3"}, kind="compare",
                version=version)
    interrupted = store.create_run(model="a", suite="s", suite_version=version, slot=DAY + timedelta(days=6, hours=1),
                                   kind="compare", planned=4, owner="gone", now=DAY)
    store.finish_run(interrupted, "interrupted", DAY + timedelta(days=6, hours=1))
    today = add_run(store, "a", DAY + timedelta(days=6), version=version)

    points = series.points(store, "a", "s")
    assert len(points) == 7 and all(p.point.passed == 4 for p in points)
    # each case passed its 6 scheduled samples (shrunk by the case-level prior); the failing compare runs are not in it
    from canary.caselevel import PRIOR
    assert monitor.assess(store, config, "a", "s", today).quality.mean == pytest.approx((6 + PRIOR) / (6 + 2 * PRIOR))
    assert [p["pass_rate"] for p in reports.history(store, config, "a", "s")] == [1.0] * 7
    assert [r.kind for r in store.latest_runs()] == ["scheduled"]
    assert store.latest_pass_rates() == [("a", "s", 4, 4)]
    assert abandoned_runs(store, config, DAY + timedelta(days=6, hours=2)) == []  # nobody resumes a compare run
    store.close()


def test_since_takes_durations_and_dates():
    now = datetime(2026, 5, 31, 12)
    assert parse_since("3d", now) == datetime(2026, 5, 28, 12)
    assert parse_since("12h", now) == datetime(2026, 5, 31)
    assert parse_since("2w", now) == datetime(2026, 5, 17, 12)
    assert parse_since(None, now) == datetime(2026, 5, 24, 12)
    assert parse_since("2026-05-28", now) == datetime(2026, 5, 28)
    assert parse_since("2026-05-28T06:00Z", now) == datetime(2026, 5, 28, 6)
    assert parse_since("2026-05-28T08:00+02:00", now) == datetime(2026, 5, 28, 6)  # to UTC
