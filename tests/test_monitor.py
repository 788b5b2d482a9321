"""Signals of a series after a run: confirmation pooling, model_changed, drift, exclusions."""
from __future__ import annotations

import json
import textwrap

import pytest
from datetime import datetime, timedelta

from canary import series
from canary import alerts, monitor
from canary.config import load_config
from canary.store import Store

T0 = datetime(2026, 11, 1, 6)


def config_for(tmp_path, db_url, extra=""):
    (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
        database: {db_url}
        models:
          - {{name: m, provider: openai, model: x}}
        """) + textwrap.dedent(extra))
    return load_config(tmp_path / "canary.yaml")


def add_run(store, slot, passed, failed, *, kind="scheduled", errors=0, tokens=50, model_id="x-1", version="v1"):
    """Ten cases c0..c9 of three samples, case by case: the failures fall on the last cases."""
    run_id = store.create_run(model="m", suite="s", suite_version=version, slot=slot, kind=kind,
                              planned=passed + failed + errors, owner=None, now=slot)
    rows = []
    for i in range(passed + failed + errors):
        status = "passed" if i < passed else "failed" if i < passed + failed else "error"
        rows.append({"run_id": run_id, "case_id": f"c{i // 3}", "sample": i % 3, "status": status,
                     "error": "overloaded" if status == "error" else None,
                     "input_tokens": 10, "output_tokens": tokens if status != "error" else 0,
                     "latency_ms": 100.0, "reported_model": model_id if status != "error" else None,
                     "turns": [{"user": "q", "text": "a", "verdicts": [
                         {"type": "icontains", "passed": status == "passed", "explanation": "contains \"x\": no"}]}],
                     "finished_at": slot})
    store.insert_samples(rows)
    store.finish_run(run_id, "complete", slot)
    return run_id


def history(store, days=8):
    """Eight days of 29/30 and 30/30: c0..c8 passed 24 of 24 samples, c9 20 of 24."""
    for d in range(days):
        add_run(store, T0 + timedelta(days=d), 29 + d % 2, 1 - d % 2)


def test_a_breach_that_the_confirmation_run_does_not_repeat_opens_nothing(tmp_path, db_url):
    config = config_for(tmp_path, db_url)
    store = Store(config.database_url)
    history(store)
    slot = T0 + timedelta(days=8)
    # Case level, Beta(1.25, 1.25) prior: c0..c8 expect (24+1.25)/(24+2.5) = 0.952830 each,
    # c9 (20+1.25)/26.5 = 0.801887. Today c8 passes 1 of 3 and c9 0 of 3: 25/30.
    #   E = 27 x 0.952830 + 3 x 0.801887 = 28.132075
    #   V = 9 x 3 x 0.952830 x 0.047170 x (26.5+3)/27.5 + 3 x 0.801887 x 0.198113 x 29.5/27.5 = 1.813020
    #   sd 1.346484; 25 < 28.132075 - 2 x 1.346484 = 25.439 (84.80%): breach
    first = add_run(store, slot, 25, 5)
    alone = monitor.assess(store, config, "m", "s", first)
    assert alone.quality.status == "breach"
    assert alone.quality.lower == pytest.approx(0.847970, abs=1e-6)
    add_run(store, slot, 30, 0, kind="confirm")  # the confirmation run is perfect
    pooled = monitor.assess(store, config, "m", "s", first)
    assert pooled.today.run_ids[0] == first and len(pooled.today.run_ids) == 2
    assert (pooled.today.point.passed, pooled.today.point.answered) == (55, 60)
    # pooled, six samples a case: E = 56.264151, sd 1.998697 -> 55 >= 52.27 (87.11%): ok
    assert pooled.quality.status == "ok"
    assert pooled.quality.lower == pytest.approx(0.871113, abs=1e-6)
    assert monitor.act(store, [pooled], slot) == [] and store.open_alerts() == []
    store.close()


def test_model_changed_and_token_drift_are_their_own_alerts(tmp_path, db_url):
    config = config_for(tmp_path, db_url)
    store = Store(config.database_url)
    history(store)
    today = add_run(store, T0 + timedelta(days=8), 30, 0, tokens=90, model_id="x-2")
    a = monitor.assess(store, config, "m", "s", today)
    assert a.quality.status == "ok"
    assert a.signals["model_changed"][0] and a.signals["model_changed"][1]["before"] == "x-1"
    assert a.signals["drift:tokens"][0]  # 90 tokens per answer against a flat 50
    events = monitor.act(store, [a], T0 + timedelta(days=8))
    assert sorted(e.kind for e in events) == ["drift:tokens", "model_changed"]
    back = add_run(store, T0 + timedelta(days=9), 30, 0, tokens=50, model_id="x-1")
    events = monitor.act(store, [monitor.assess(store, config, "m", "s", back)], T0 + timedelta(days=9))
    assert sorted((e.kind, e.action) for e in events) == [("drift:tokens", "recovered"), ("model_changed", "recovered")]
    store.close()


def test_the_opening_run_and_runs_during_an_alert_stay_out_of_the_baseline(tmp_path, db_url):
    config = config_for(tmp_path, db_url, "detection: {confirm: false}\n")
    store = Store(config.database_url)
    history(store)
    bad = add_run(store, T0 + timedelta(days=8), 15, 15)
    assert [e.kind for e in monitor.act(store, [monitor.assess(store, config, "m", "s", bad)], T0)] == ["quality"]
    worse = add_run(store, T0 + timedelta(days=9), 12, 18)
    a = monitor.assess(store, config, "m", "s", worse)
    assert a.quality.baseline_runs == 8 and a.quality.mean > 0.93  # the 50% day is not in it
    assert monitor.act(store, [a], T0) == []  # still in breach: no second message
    [points] = [series.points(store, "m", "s")]
    assert [p.point.in_alert for p in points[-2:]] == [True, True]
    store.close()


def test_an_outage_gives_no_quality_verdict(tmp_path, db_url):
    config = config_for(tmp_path, db_url)
    store = Store(config.database_url)
    history(store)
    down = add_run(store, T0 + timedelta(days=8), 3, 2, errors=25)
    a = monitor.assess(store, config, "m", "s", down)
    assert a.quality.status == "no_verdict"  # 5 of 30 answered: nothing is imputed
    assert a.signals["availability"][0] and "drift:tokens" not in a.signals
    assert [e.kind for e in monitor.act(store, [a], T0)] == ["availability"]
    store.close()


def test_moved_history_keeps_its_alert_days_out_of_the_baseline(tmp_path, db_url):
    """export then import into another database: runs judged inside an alert stay excluded."""
    import io
    from canary.transfer import export_lines, import_jsonl, write_jsonl
    config = config_for(tmp_path, db_url, "detection: {confirm: false}\n")
    store = Store(config.database_url)
    history(store)
    bad = add_run(store, T0 + timedelta(days=8), 12, 18)
    monitor.act(store, [monitor.assess(store, config, "m", "s", bad)], T0)
    add_run(store, T0 + timedelta(days=9), 13, 17)  # made while the alert was open
    source = [p.point.in_alert for p in series.points(store, "m", "s")]
    assert source == [False] * 8 + [True, True]
    out = io.StringIO()
    write_jsonl(export_lines(store), out)
    store.close()

    target = Store(f"sqlite:///{tmp_path / 'moved.db'}")
    import_jsonl(target, io.StringIO(out.getvalue()))
    assert [p.point.in_alert for p in series.points(target, "m", "s")] == source
    assert target.unassessed(["m"], since=T0, finished_before=T0 + timedelta(days=30)) == []  # not judged again
    target.close()


def add_cases(store, slot, cases: dict[str, tuple[int, int]]):
    """A run where each case passed and failed that many samples."""
    run_id = store.create_run(model="m", suite="s", suite_version="v1", slot=slot, kind="scheduled",
                              planned=sum(p + f for p, f in cases.values()), owner=None, now=slot)
    rows = []
    for case, (passed, failed) in cases.items():
        for i in range(passed + failed):
            ok = i < passed
            rows.append({"run_id": run_id, "case_id": case, "sample": i, "status": "passed" if ok else "failed",
                         "input_tokens": 10, "output_tokens": 50, "latency_ms": 100.0, "reported_model": "x-1",
                         "turns": [{"user": "q", "text": "a", "verdicts": [
                             {"type": "icontains", "passed": ok, "explanation": f"{case}: contains \"x\": no"}]}],
                         "finished_at": slot})
    store.insert_samples(rows)
    store.finish_run(run_id, "complete", slot)
    return run_id


def test_the_message_names_newly_failing_cases_first(tmp_path, db_url):
    from slack_stub import SlackStub
    config = config_for(tmp_path, db_url, "detection: {confirm: false}\n")
    store = Store(config.database_url)
    steady = {f"c{i}": (3, 0) for i in range(6)}
    for d in range(8):  # c0..c5 always pass, "flaky" passes 1 or 2 of 3, "hopeless" never
        add_cases(store, T0 + timedelta(days=d), {**steady, "flaky": (1 + d % 2, 2 - d % 2), "hopeless": (0, 3)})
    today = T0 + timedelta(days=8)
    run_id = add_cases(store, today, {**steady, "c4": (1, 2), "c2": (0, 3), "flaky": (1, 2), "hopeless": (0, 3)})
    a = monitor.assess(store, config, "m", "s", run_id)
    assert a.quality.status == "breach" and a.quality.method == "sigma"
    assert [e.kind for e in monitor.act(store, [a], today)] == ["quality"]
    [alert] = store.open_alerts()
    details = alert.details
    assert [(f["case"], f["kind"]) for f in details["failing"]] == [
        ("c2", "newly_failing"), ("c4", "newly_failing"), ("flaky", "flaky")]
    assert details["always_failing"] == 1 and details["more_failing"] == 0
    assert details["failing"][0]["explanation"] == 'icontains: c2: contains "x": no'
    with SlackStub() as slack:
        report = alerts.deliver(store, alerts.WebhookNotifier(slack.url + "/hook"), now=today, owner="t")
        assert report.sent == 1
        text = json.dumps(slack.accepted[0]["body"]["blocks"])
    assert text.index("`c2` (newly failing: 0/3 passed today, 24/24 before)") < text.index("`c4`") < text.index("`flaky`")
    assert "1 case that always fails (no news)" in text and "hopeless" not in text
    store.close()


def failures(n: int) -> tuple[int, int]:
    return 30 - n, n


def test_a_slow_slide_is_caught_against_the_reference_and_ack_accepts_it(tmp_path, db_url):
    config = config_for(tmp_path, db_url, "detection: {confirm: false}\n")
    store = Store(config.database_url)
    # 14 reference runs of 30/30 and 29/30, then one failure more every few days: each day's
    # rolling check learns the slide; the last runs pooled against the reference do not.
    slide = [1, 1, 2, 1, 2, 2, 2, 3, 2, 3, 3, 3, 4, 3, 4, 4]
    events = []
    for d, n in enumerate([1 - d % 2 for d in range(14)] + slide):
        slot = T0 + timedelta(days=d)
        a = monitor.assess(store, config, "m", "s", add_run(store, slot, *failures(n)))
        assert a.quality.check == "rolling" or a.quality.slide.breach
        events += [(d, e.kind, e.action, a.quality.check) for e in monitor.act(store, [a], slot)]
    assert events == [(24, "quality", "opened", "reference")]  # the rolling check never breached
    [alert] = store.open_alerts()
    assert alert.details["reason"] == "4 points below the reference of 2026-11-01 (rolling window absorbed it)"
    assert alert.details["slide"]["runs"] == 5  # 150 answered samples at least: 5 runs of 30
    assert monitor.ack(store, "m", "s", T0 + timedelta(days=29, hours=1)) == 1
    assert store.open_alerts() == []
    # the new level is the reference now: no alert at 4 failures a day
    for d in range(30, 52):
        slot = T0 + timedelta(days=d)
        a = monitor.assess(store, config, "m", "s", add_run(store, slot, *failures(3 + d % 2)))
        assert monitor.act(store, [a], slot) == []
    assert a.quality.status == "ok" and a.quality.slide is not None and not a.quality.slide.breach
    store.close()


def test_status_shows_the_drop_caught_once_a_run_simulated_it(tmp_path, db_url):
    from canary import reports
    from canary.runner import Job
    from canary.suites import load_suite
    config = config_for(tmp_path, db_url)
    (tmp_path / "s.yaml").write_text("suite: s\nrepeat: 3\ncases:\n" + "".join(
        f"  - {{id: c{i}, prompt: q{i}, assert: [{{type: contains, value: a}}], reference: {{text: a}}}}\n"
        for i in range(10)))
    suite = load_suite(tmp_path / "s.yaml")
    store = Store(config.database_url)
    jobs = [Job(config.models[0], suite, 3, T0, "scheduled")]
    for d in range(14):
        slot = T0 + timedelta(days=d)
        a = monitor.assess(store, config, "m", "s", add_run(store, slot, 29 + d % 2, 1 - d % 2, version=suite.version))
        monitor.update_sensitivity(store, config, jobs, [a], slot)
        [row] = reports.status(store, config, {"s": suite}, slot)
        # simulated once the series has `window` (14) runs of this suite version, not before
        assert row["catches_simulated"] == (d == 13)
    cached = store.sensitivities()
    assert len(cached) == 1 and next(iter(cached.values())).source == "history"
    assert row["catches"] is not None and 1 <= row["catches"] <= 50
    store.close()
