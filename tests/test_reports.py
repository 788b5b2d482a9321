"""Read-only views: history with its band, status, the HTML report."""
from __future__ import annotations

import textwrap
from datetime import datetime, timedelta

from canary import reports
from canary.config import load_config
from canary.report_html import render_report
from canary.store import Store
from canary.suites import load_suite

T0 = datetime(2026, 11, 1, 6)


def add_run(store, model, slot, passed, failed, version):
    run_id = store.create_run(model=model, suite="s", suite_version=version, slot=slot, kind="scheduled",
                              planned=passed + failed, owner=None, now=slot)
    store.insert_samples([{"run_id": run_id, "case_id": f"c{i}", "sample": 0,
                           "status": "passed" if i < passed else "failed", "input_tokens": 5, "output_tokens": 5,
                           "latency_ms": 10.0, "turns": [], "finished_at": slot} for i in range(passed + failed)])
    store.finish_run(run_id, "complete", slot)


def rows_catch_nothing_yet(rows) -> bool:
    """No sensitivity simulated yet (status never simulates): the column is empty, not zero."""
    return all(r["catches"] is None and not r["catches_simulated"] for r in rows)


def setup(tmp_path, db_url):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "s.yaml").write_text(textwrap.dedent("""\
        suite: s
        cases:
          - {id: c0, prompt: hi, assert: [{type: contains, value: hi}], reference: {text: hi}}
        """))
    (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
        database: {db_url}
        schedule: "0 6 * * *"
        models:
          - {{name: a, provider: anthropic, model: m}}
          - {{name: b, provider: openai, model: m, schedule: "30 7 * * 1"}}
        """))
    config = load_config(tmp_path / "canary.yaml")
    suite = load_suite(tmp_path / "prompts" / "s.yaml")
    return config, {"s": suite}, Store(config.database_url)


def test_history_status_and_report(tmp_path, db_url):
    config, suites, store = setup(tmp_path, db_url)
    v = suites["s"].version
    for day in range(8):
        add_run(store, "a", T0 + timedelta(days=day), 29 if day % 2 else 30, 1 if day % 2 else 0, v)
        add_run(store, "b", T0 + timedelta(days=day), 18, 12, v)
    add_run(store, "a", T0 + timedelta(days=8), 15, 15, v)  # a drop on the last day

    points = reports.history(store, config, "a", "s")
    assert [p["verdict"] for p in points[:5]] == ["no_verdict"] * 5  # min_history 5
    assert points[-1]["verdict"] == "breach" and points[-1]["pass_rate"] == 0.5
    # the expected rate, case by case (Beta(1.25, 1.25) prior): c0..c28 passed 8 of 8, c29 4 of 8
    assert abs(points[-1]["mean"] - (29 * 9.25 / 10.5 + 5.25 / 10.5) / 30) < 1e-12
    assert rows_catch_nothing_yet(reports.status(store, config, suites, T0))

    rows = {r["model"]: r for r in reports.status(store, config, suites, T0 + timedelta(days=8, hours=1))}
    assert rows["a"]["next_run"] == datetime(2026, 11, 10, 6)
    assert rows["b"]["next_run"] == datetime(2026, 11, 9, 7, 30)  # its own schedule: Mondays 07:30 (crontab 1)
    assert rows["a"]["verdict"] == "breach" and rows["b"]["verdict"] == "ok"

    page = render_report(store, config, suites, T0 + timedelta(days=9))
    assert page.count('class="chart main') == 2 and 'class="dot breach"' in page and "a · s" in page
    store.close()
