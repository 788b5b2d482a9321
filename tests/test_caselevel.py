"""canary.caselevel: the case-level sigma rule, the slow-slide guard, the failing cases' order.

Every expectation is computed by hand in the comment beside it (prior Beta(1.25, 1.25)).
"""
from __future__ import annotations

import pytest

from canary import caselevel
from canary.detect import DetectionParams, RunPoint, evaluate, judge

SIGMA = DetectionParams()  # case level: sigma 2, window 14, min_history 5, slide guard on


def run(n: int = 3, version: str = "v1", in_alert: bool = False, **cases: int) -> RunPoint:
    """A run where each named case passed that many of n samples."""
    counts = {c: (k, n) for c, k in cases.items()}
    passed = sum(k for k, _ in counts.values())
    return RunPoint(passed, n * len(counts), n * len(counts), version, in_alert, counts)


def test_prior_is_what_the_hand_computations_assume():
    assert caselevel.PRIOR == 1.25


# Baseline: 14 runs of 3 samples; case a passed 42 of 42, case b 21 of 42.
#   p_a = (42+1.25)/(42+2.5) = 0.971910, p_b = 22.25/44.5 = 0.5
#   today 3 samples each: E = 3 x 0.971910 + 3 x 0.5 = 4.415730
#   V_a = 3 x 0.971910 x 0.028090 x (44.5+3)/(44.5+1) = 0.085503; V_b = 3 x 0.25 x 47.5/45.5 = 0.782967
#   sd = sqrt(0.868470) = 0.931917; lower = 4.415730 - 1.863834 = 2.551896 passes (42.53%)
BASE = [run(a=3, b=1 + i % 2) for i in range(14)]  # b: 1, 2, 1, 2, ... = 21 of 42


def test_case_level_sigma_breach_and_ok_around_the_threshold():
    v = evaluate(BASE, run(a=3, b=0), SIGMA)  # 3 < 2.552? no: 3/6 = 50% >= 42.53%
    assert v.status == "ok"
    assert v.mean == pytest.approx(4.415730 / 6, abs=1e-6)
    assert v.sd == pytest.approx(0.931917 / 6, abs=1e-6)
    assert v.lower == pytest.approx(2.551896 / 6, abs=1e-6)
    breach = evaluate(BASE, run(a=2, b=0), SIGMA)  # 2 < 2.552
    assert breach.status == "breach" and breach.method == "sigma"
    assert breach.statistic == pytest.approx((2 - 4.415730) / 0.931917, abs=1e-5)
    assert breach.reason == ("pass rate 33.3% (2/6) < 42.5% = expected 73.6% (each case at its baseline "
                             "rate) - 2.0 x sd 15.5%, 14 runs")


def test_cases_are_not_coin_flips_of_one_rate():
    # A day when the reliable case a errored (not answered) and b passed 0 of 3. The run-level
    # rule: baseline rates 4/6 and 5/6, mean 0.75, sd 0.0891 floored at today's n=3:
    # sqrt(0.75 x 0.25 / 3) = 0.25 -> lower 0.25; 0/3 breaches. Case level: E = 3 x 0.5 = 1.5,
    # V = 0.782967, sd 0.884854, lower = 1.5 - 1.769708 < 0: ok. Errors changed the answered
    # mix (the reliable case is gone from today), not the model.
    mix = RunPoint(0, 3, 6, "v1", cases={"a": (0, 0), "b": (0, 3)})
    assert evaluate(BASE, mix, DetectionParams(method="sigma_run")).status == "breach"
    v = evaluate(BASE, mix, SIGMA)
    assert v.status == "ok" and v.mean == pytest.approx(0.5) and v.lower == pytest.approx(-0.269708 / 3, abs=1e-6)


def test_floor_one_wrong_sample_never_breaches_a_flat_series():
    # One case, 42 of 42: E = 3 x 0.971910 = 2.915730, sd sqrt(0.085503) = 0.292408 -> floored at
    # 1/sigma = 0.5: lower = 2.915730 - 1 = 1.915730 passes. 2 of 3 is ok (unfloored, 2.331 would
    # have made it a breach), 1 of 3 breaches.
    flat = [run(a=3)] * 14
    one_wrong = evaluate(flat, run(a=2), SIGMA)
    assert one_wrong.status == "ok" and one_wrong.sd == pytest.approx(0.5 / 3)
    assert one_wrong.lower == pytest.approx(1.915730 / 3, abs=1e-6)
    assert evaluate(flat, run(a=1), SIGMA).status == "breach"
    # sigma 1: the floor is one sample (1/sigma = 1), still one wrong sample is no breach
    assert evaluate(flat, run(a=2), DetectionParams(sigma=1.0)).status == "ok"


def test_case_level_needs_per_case_counts():
    with pytest.raises(ValueError, match="per-case"):
        evaluate(BASE, RunPoint(3, 6, 6, "v1"), SIGMA)


def ten(k: int, in_alert: bool = False) -> RunPoint:
    return run(n=10, in_alert=in_alert, a=k)


# Slide guard: one case at 10 samples a run. Reference: 14 runs at 9/10 -> 126 of 140,
#   p = 127.25/142.5 = 0.892982. Recent 3 runs, 30 samples: E = 26.789474,
#   V = 30 x 0.892982 x 0.107018 x (142.5+30)/(142.5+1) = 3.446326, sd 1.856428
#   lower = 26.789474 - 3.712856 = 23.076617 passes (76.92%)
REFERENCE = [ten(9)] * 14
NO_MINIMUM = DetectionParams(slide_samples=0)


def test_slide_guard_against_the_reference():
    s = caselevel.slide(REFERENCE + [ten(7), ten(7)], ten(7), NO_MINIMUM)  # 21 < 23.08
    assert s.breach and s.runs == 3 and s.reference_start == 0
    assert s.expected == pytest.approx(0.892982, abs=1e-6)
    assert s.lower == pytest.approx(23.076617 / 30, abs=1e-6)
    assert s.points == pytest.approx(19.298246, abs=1e-5)
    ok = caselevel.slide(REFERENCE + [ten(8), ten(8)], ten(8), NO_MINIMUM)  # 24 >= 23.08
    assert not ok.breach and ok.rate == pytest.approx(0.8)


def test_slide_guard_waits_for_a_full_reference_and_enough_runs_after_it():
    assert caselevel.slide(REFERENCE[:13] + [ten(7)], ten(7), NO_MINIMUM) is None  # 13 + 1: reference not full
    assert caselevel.slide(REFERENCE + [ten(7)], ten(7), NO_MINIMUM) is None  # only 2 runs after it
    # slide_samples 150: 15 runs of 10 after the reference are needed, 14 are not enough
    assert caselevel.slide(REFERENCE + [ten(7)] * 13, ten(7), SIGMA) is None
    s = caselevel.slide(REFERENCE + [ten(7)] * 14, ten(7), SIGMA)
    assert s.runs == 15 and s.breach


def test_slide_reference_skips_runs_in_an_alert_and_restarts_with_the_suite():
    # Two in-alert runs among the first 16: the reference is the 14 others, so it starts at index 0
    # and ends at index 15; the recent runs are those after it, in-alert ones included.
    history = REFERENCE[:5] + [ten(2, in_alert=True)] * 2 + REFERENCE[5:] + [ten(7, in_alert=True)] * 2
    s = caselevel.slide(history, ten(7), NO_MINIMUM)
    assert s.expected == pytest.approx(0.892982, abs=1e-6) and s.runs == 3 and s.breach
    assert caselevel.reference(history, ten(7), NO_MINIMUM) == REFERENCE
    # a new suite version: no reference yet
    v2 = run(n=10, version="v2", a=7)
    assert caselevel.slide(history + [v2] * 3, v2, NO_MINIMUM) is None


def test_judge_catches_a_slide_the_rolling_window_absorbed():
    # 9/10 for 14 runs, then a slow slide to 7/10: the rolling baseline (the last 14 runs, mean
    # 7.8/10) has learnt it, the reference has not.
    history = REFERENCE + [ten(k) for k in (9, 9, 9, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7)]
    rolling = evaluate(history, ten(7), NO_MINIMUM)
    assert rolling.status == "ok"
    v = judge(history, ten(7), NO_MINIMUM)
    assert v.status == "breach" and v.check == "reference" and v.slide.breach
    assert v.reason.startswith("19.3 points below the reference (rolling window absorbed it): last 3 runs 70.0%")
    assert v.lower == rolling.lower and v.mean == rolling.mean  # the band drawn is the rolling check's
    # the guard off, or a method with a frozen reference: no slide verdict
    assert judge(history, ten(7), DetectionParams(slide=False, slide_samples=0)).status == "ok"
    assert judge(history, ten(7), DetectionParams(method="cusum", slide_samples=0)).slide is None


def test_changes_put_newly_failing_cases_first_and_always_failing_last():
    base = [run(reliable=3, steady=3, flaky=1 + i % 2, hopeless=0) for i in range(14)]
    today = run(reliable=0, steady=2, flaky=1, hopeless=0)
    found = caselevel.changes(base, today)
    assert [(c.case, c.kind) for c in found] == [
        ("reliable", "newly_failing"), ("steady", "newly_failing"), ("flaky", "flaky"),
        ("hopeless", "always_failing")]
    assert (found[0].passed, found[0].answered, found[0].base_passed, found[0].base_answered) == (0, 3, 42, 42)
