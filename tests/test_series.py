"""A series read as its questions need: the bounded context of one verdict, stored verdicts.

The bounded reads must decide exactly what the whole history decides: `detect.context` is
checked against `judge` on random series (alerts, errors, suite changes, every method), and
`series.around` against the whole series in the database on both engines.
"""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from canary import detect, reports, series
from canary.detect import DetectionParams, RunPoint, context, judge
from canary.store import Store
from test_monitor import add_run, config_for

T0 = datetime(2026, 1, 1, 6)


def random_series(rng: random.Random, n: int) -> list[RunPoint]:
    """Runs of 10 cases x 3 samples: alert stretches, outages, a suite change, drops."""
    runs, in_alert = [], False
    for i in range(n):
        if rng.random() < 0.05:
            in_alert = not in_alert
        version = "v2" if i > n * 0.7 and rng.random() < 0.9 else "v1"
        cases, passed, answered = {}, 0, 0
        level = 0.6 if rng.random() < 0.1 else 0.95
        for c in range(10):
            n_answered = 0 if rng.random() < 0.03 else 3
            k = sum(rng.random() < level for _ in range(n_answered))
            cases[f"c{c}"] = (k, n_answered)
            passed, answered = passed + k, answered + n_answered
        outage = rng.random() < 0.05
        runs.append(RunPoint(passed, 0 if outage else answered, 30, version, in_alert,
                             {} if outage else cases))
    return runs


def judged(history, today, params, names=None):
    """judge, with the slide guard's reference named by its run (`names`, parallel to
    `history`; default the run itself) rather than by its index in `history`: a part of the
    history names the same run by another index."""
    v = judge(history, today, params)
    if v.slide is None:
        return v
    name = (names or [id(r) for r in history])[v.slide.reference_start]
    return replace(v, slide=replace(v.slide, reference_start=name))


def reference_of(history, today, params) -> set[int]:
    eligible = [j for j, r in enumerate(history) if r.suite_version == today.suite_version
                and detect.answered_enough(r, params.min_answered_share) and not r.in_alert]
    return set(eligible[:params.window])


METHODS = [DetectionParams(), DetectionParams(method="sigma_run"), DetectionParams(method="binomial"),
           DetectionParams(method="cusum"), DetectionParams(method="ewma"), DetectionParams(baseline="frozen"),
           DetectionParams(window=5, min_history=3, slide_runs=2, slide_samples=100),
           DetectionParams(min_answered_share=0.9)]


@pytest.mark.parametrize("params", METHODS, ids=lambda p: f"{p.method}-{p.baseline}-w{p.window}")
def test_the_context_of_a_verdict_decides_what_the_whole_history_decides(params):
    rng = random.Random(7)
    for trial in range(6):
        runs = random_series(rng, 70)
        for i in range(1, len(runs)):
            history, today = runs[:i], runs[i]
            if today.answered and not today.cases:
                continue  # an outage day: no verdict either way
            idx, complete = context(history, today, params)
            assert idx == sorted(set(idx)) and all(0 <= j < i for j in idx)
            assert judged([history[j] for j in idx], today, params) == judged(history, today, params), (trial, i)
            # complete: the two ends `series.around` reads (the reference, and the runs from the
            # oldest other part of the context on) decide the same, and say so again
            if complete and params.method not in ("cusum", "ewma"):
                reference = [j for j in idx if j in reference_of(history, today, params)]
                start = min([j for j in idx if j not in reference], default=i)
                ends = [history[j] for j in reference if j < start] + history[start:]
                assert judged(ends, today, params) == judged(history, today, params), (trial, i)
                assert context(ends, today, params)[1]


def test_a_long_series_is_judged_from_its_two_ends_as_from_the_whole(tmp_path, db_url):
    """100 days (an alert stretch, an outage, a suite change): each day's verdict read through
    `around` (both ends of the series, widened while a part is missing) is the whole history's."""
    config = config_for(tmp_path, db_url)
    store = Store(config.database_url)
    rng = random.Random(3)
    ids = []
    for d in range(100):
        failed = rng.choice([0, 0, 1, 1, 2, 8]) if not 40 <= d < 60 else 12  # a 20-day drop
        errors = 25 if d == 70 else 0  # an outage
        ids.append(add_run(store, T0 + timedelta(days=d), 30 - failed - errors, failed, errors=errors,
                           version="v1" if d < 85 else "v2"))
    from canary import alerts
    alerts.open_alert(store, model="m", suite="s", kind="quality", run_id=ids[41], details={"reason": "t"},
                      message={"text": "t"}, now=T0)
    [opened] = store.open_alerts("m", "s")
    alerts.close_alert(store, opened.id, run_id=ids[62], by="recovered", message=None, now=T0)
    params = DetectionParams()
    whole = series.points(store, "m", "s")
    assert len(whole) == 100 and sum(p.point.in_alert for p in whole) == 21
    for d in (5, 20, 35, 45, 61, 63, 71, 86, 99):
        history, today = series.around(store, "m", "s", params, ids[d])
        assert today.run_ids == [ids[d]] and len(history) <= d
        assert judged([p.point for p in history], today.point, params, [p.slot for p in history]) == \
            judged([p.point for p in whole[:d]], whole[d].point, params, [p.slot for p in whole[:d]]), d
    history, latest = series.around(store, "m", "s", params)  # the latest point, as status reads it
    assert latest.run_ids == [ids[-1]] and len(history) < 99
    store.close()


def test_history_shows_the_verdict_each_run_was_judged_with_and_keeps_the_ones_it_judges(tmp_path, db_url):
    config = config_for(tmp_path, db_url)
    store = Store(config.database_url)
    ids = [add_run(store, T0 + timedelta(days=d), 30 - d % 2, d % 2) for d in range(8)]
    assert all(r.verdict is None for r in store.series("m", "s"))  # runs judged by nobody yet
    judged_now = reports.history(store, config, "m", "s")  # judged at read time, then kept
    kept = [r.verdict for r in store.series("m", "s")]
    assert [(v["status"], v["mean"], v["lower"]) for v in kept] == \
        [(r["verdict"], r["mean"], r["lower"]) for r in judged_now]
    assert [r["verdict"] for r in judged_now] == ["no_verdict"] * 5 + ["ok"] * 3
    # what monitor kept for a point is what history shows, even after the settings change
    kept = replace(detect.Verdict.from_stored(store.run(ids[7]).verdict), lower=0.5, mean=0.9, status="ok")
    store.save_verdict(ids[7], kept.stored())
    stricter = config.replace(detection=config.detection.replace(sigma=0.5))
    again = reports.history(store, stricter, "m", "s")
    assert again[:7] == judged_now[:7] and (again[7]["lower"], again[7]["mean"]) == (0.5, 0.9)
    assert reports.latest(store, stricter, "m", "s")["lower"] == 0.5
    store.close()


def test_the_daemons_page_is_built_again_only_when_what_it_shows_changed(tmp_path, db_url):
    from canary import alerts
    from canary.monitor import ack
    from canary.web import CachedPage
    config = config_for(tmp_path, db_url)
    store = Store(config.database_url)
    ids = [add_run(store, T0 + timedelta(days=d), 30, 0) for d in range(3)]
    builds, now = [], [0.0]
    page = CachedPage(lambda: builds.append(1) or f"page {len(builds)}", store.data_version, max_age=600,
                      clock=lambda: now[0])
    assert page() == page() == "page 1"
    add_run(store, T0 + timedelta(days=3), 29, 1)  # a run: built again
    assert page() == "page 2" == page()
    store.save_verdict(ids[0], {"status": "ok"})  # a verdict kept
    assert page() == "page 3"
    alerts.open_alert(store, model="m", suite="s", kind="quality", run_id=ids[1], details={"reason": "r"},
                      message={"text": "t"}, now=T0)
    assert page() == "page 4"
    ack(store, "m", "s", T0)  # closes the alert and acks
    assert page() == "page 5" == page()
    now[0] = 601.0  # older than max_age: its relative times are rebuilt
    assert page() == "page 6"
    store.close()
