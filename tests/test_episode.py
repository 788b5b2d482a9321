"""canary.episode: confirmation, open/stay/close and baseline exclusion, driven by a list."""
from __future__ import annotations

from canary import episode
from canary.detect import DetectionParams, RunPoint, Verdict


def verdict(status: str) -> Verdict:
    return Verdict(status, "sigma", 0.5, 0.9, 0.05, 0.8, 14, "r")


def test_transition_table():
    assert episode.transition("breach", alert_open=False) == "open"
    assert episode.transition("breach", alert_open=True) is None  # stays open: no second message
    assert episode.transition("ok", alert_open=True) == "close"
    assert episode.transition("ok", alert_open=False) is None
    assert episode.transition("no_verdict", alert_open=True) is None  # an outage changes nothing
    assert episode.transition("no_verdict", alert_open=False) is None


def test_confirmation_only_for_a_fresh_single_breach():
    breach, ok = verdict("breach"), verdict("ok")
    assert episode.wants_confirmation(breach, alert_open=False, confirm=True, pooled=False)
    assert not episode.wants_confirmation(breach, alert_open=False, confirm=False, pooled=False)
    assert not episode.wants_confirmation(breach, alert_open=True, confirm=True, pooled=False)
    assert not episode.wants_confirmation(breach, alert_open=False, confirm=True, pooled=True)
    assert not episode.wants_confirmation(ok, alert_open=False, confirm=True, pooled=False)


def test_inside_an_alert_from_the_opening_run_up_to_the_closing_one():
    intervals = [(10, 13), (20, None)]
    assert [r for r in range(25) if episode.inside(r, intervals)] == [10, 11, 12, 20, 21, 22, 23, 24]


def point(passed: int) -> RunPoint:
    return RunPoint(passed, 30, 30, "v", cases={f"c{i}": (1 if i < passed else 0, 1) for i in range(30)})


def test_walk_confirms_opens_keeps_out_of_the_baseline_and_closes():
    walk = episode.Walk(DetectionParams(window=5, min_history=5, slide_samples=0))
    calls = []

    def confirmation(passed):
        def make():
            calls.append(passed)
            return point(passed)
        return make

    for _ in range(5):
        assert walk.day(point(30), confirmation(30)) is None
    assert calls == []  # no verdict before min_history, and no breach after
    # Five runs of 30/30: each case expects (5+1.25)/(5+2.5) = 0.833333; 30 samples: E = 25,
    # sd sqrt(30 x 0.833333 x 0.166667 x 8.5/8.5) = 2.041241 -> 14 < 20.92: breach. Pooled with a
    # perfect confirmation run, 2 samples a case: E = 50, sd sqrt(60 x 0.138889 x 9.5/8.5)
    # = 3.051840 -> 44 >= 43.90: no alert.
    assert walk.day(point(14), confirmation(30)) is None
    assert calls == [30] and walk.history[-1].passed == 44 and walk.history[-1].answered == 60  # pooled
    assert walk.day(point(10), confirmation(10)) == "open"
    assert walk.day(point(10), confirmation(10)) is None  # still in breach: no confirmation while open
    assert calls == [30, 10]
    assert walk.alert_open
    # Back to 30/30: the rolling check is fine, but the slow-slide guard (the last 3 runs pooled,
    # 50/90, against the reference of the first 5 runs, E = 75, sd 3.93, lower 67.1) is not:
    # the alert stays open until the recent level is back too (70/90 >= 67.1).
    assert walk.day(point(30), confirmation(30)) is None and walk.history[-1].in_alert
    assert walk.day(point(30), confirmation(30)) == "close"
    assert [p.in_alert for p in walk.history] == [False] * 6 + [True, True, True, False]
    assert walk.intervals == [(6, 9)]
