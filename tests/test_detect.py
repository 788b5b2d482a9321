"""canary.detect: every expectation below is computed by hand in the comment beside it."""
from __future__ import annotations

import math

import pytest

from canary.detect import (
    DetectionParams,
    RunPoint,
    Verdict,
    band,
    baseline,
    evaluate,
    pool,
)

SIGMA = DetectionParams(method="sigma_run")  # the run-level rule: sigma 2.0, window 14, min_history 5, rolling


def runs(passed: list[int], n: int, version: str = "v1", in_alert: bool = False) -> list[RunPoint]:
    return [RunPoint(p, n, n, version, in_alert) for p in passed]


# Six runs of 100 answered at 90, 80, 90, 80, 90, 80 passed:
#   mean 0.85; deviations +-0.05, sum of squares 6 x 0.0025 = 0.015, /5 = 0.003, sd 0.054772
#   floor at n=100: sqrt(0.85 x 0.15 / 100) = 0.035707 < sd, so no floor
#   lower = 0.85 - 2 x 0.054772 = 0.740455
ALTERNATING = runs([90, 80, 90, 80, 90, 80], 100)


def test_sigma_rule_breach_and_ok_around_the_threshold():
    v = evaluate(ALTERNATING, RunPoint(74, 100, 100, "v1"), SIGMA)
    assert v.status == "breach"
    assert v.mean == pytest.approx(0.85)
    assert v.sd == pytest.approx(0.054772, abs=1e-6)
    assert v.lower == pytest.approx(0.740455, abs=1e-6)
    assert v.baseline_runs == 6
    assert v.reason == "pass rate 74.00% (74/100) < 74.05% = mean 85.0% - 2.0 x sd 5.5%, 6 runs"
    # 0.75 >= 0.7405
    assert evaluate(ALTERNATING, RunPoint(75, 100, 100, "v1"), SIGMA).status == "ok"


def test_sd_floor_flat_history_tolerates_one_wrong_sample_not_a_big_drop():
    # 14 runs of 30/30: mean 1, sample sd 0. Floor at n=30 with p clamped to 1 - 0.5/30 = 59/60:
    #   sqrt(59/60 x 1/60 / 30) = sqrt(0.00054630) = 0.023373; lower = 1 - 0.046746 = 0.953254
    flat = runs([30] * 14, 30)
    one_wrong = evaluate(flat, RunPoint(29, 30, 30, "v1"), SIGMA)  # 29/30 = 0.9667 >= 0.9533
    assert one_wrong.status == "ok"
    assert one_wrong.sd == pytest.approx(0.023373, abs=1e-6)
    assert one_wrong.lower == pytest.approx(0.953254, abs=1e-6)
    assert "binomial floor" in one_wrong.reason
    assert evaluate(flat, RunPoint(28, 30, 30, "v1"), SIGMA).status == "breach"  # 0.9333 < 0.9533
    assert evaluate(flat, RunPoint(20, 30, 30, "v1"), SIGMA).status == "breach"  # 0.6667


def test_runs_made_during_an_alert_are_never_in_the_baseline():
    # Two in_alert runs at 10% interleaved and two more at the end: had they counted, the
    # mean would drop far below 0.85. The baseline is the six normal runs, so the verdict
    # is the same as test_sigma_rule's: 75 ok, 74 breach, mean 0.85.
    bad = runs([10], 100, in_alert=True)
    history = ALTERNATING[:2] + bad + ALTERNATING[2:4] + bad + ALTERNATING[4:] + bad + bad
    params = DetectionParams(method="sigma_run", window=6)
    assert baseline(history, RunPoint(75, 100, 100, "v1"), params) == ALTERNATING
    v = evaluate(history, RunPoint(74, 100, 100, "v1"), params)
    assert (v.status, v.baseline_runs, round(v.mean, 6)) == ("breach", 6, 0.85)


def test_only_runs_of_todays_suite_version_count():
    # Old version at 20%: ignored. v2 runs 90, 80, 90, 80, 90 of 100:
    #   mean 0.86; deviations 4, -6, 4, -6, 4 points -> 16+36+16+36+16 = 120 / 4 = 30 -> sd 0.054772
    #   lower = 0.86 - 0.109545 = 0.750455: 75 breaches, 76 does not
    history = runs([20] * 6, 100, "v1") + runs([90, 80, 90, 80, 90], 100, "v2")
    v = evaluate(history, RunPoint(75, 100, 100, "v2"), SIGMA)
    assert (v.status, v.baseline_runs) == ("breach", 5)
    assert v.mean == pytest.approx(0.86)
    assert v.lower == pytest.approx(0.750455, abs=1e-6)
    assert evaluate(history, RunPoint(76, 100, 100, "v2"), SIGMA).status == "ok"
    # Only four v2 runs: no verdict, however many v1 runs there are.
    v = evaluate(history[:-1], RunPoint(10, 100, 100, "v2"), SIGMA)
    assert (v.status, v.baseline_runs) == ("no_verdict", 4)


def test_min_history():
    # 4 runs < min_history 5: no verdict even on a catastrophe; the 5th run gives one.
    v = evaluate(ALTERNATING[:4], RunPoint(0, 100, 100, "v1"), SIGMA)
    assert (v.status, v.mean, v.lower) == ("no_verdict", None, None)
    assert "need 5" in v.reason
    assert evaluate(ALTERNATING[:5], RunPoint(0, 100, 100, "v1"), SIGMA).status == "breach"


def test_too_few_answered_samples_give_no_verdict_and_are_not_baseline():
    # 10 of 30 answered = 33% < 50%: no verdict although 5/10 would be a huge drop.
    v = evaluate(ALTERNATING, RunPoint(5, 10, 30, "v1"), SIGMA)
    assert v.status == "no_verdict"
    assert "10 of 30" in v.reason
    v = evaluate(ALTERNATING, RunPoint(0, 0, 30, "v1"), SIGMA)
    assert (v.status, v.rate) == ("no_verdict", None)
    # Exactly 50% answered is enough: 15/15 = 100% is ok.
    assert evaluate(ALTERNATING, RunPoint(15, 15, 30, "v1"), SIGMA).status == "ok"
    # A mostly-errored history run (2 of 100 answered, 0 passed) is not in the baseline;
    # had its 0% counted the mean would be 0.7286, the sd ~0.33 and 74 would pass.
    history = ALTERNATING + [RunPoint(0, 2, 100, "v1")]
    v = evaluate(history, RunPoint(74, 100, 100, "v1"), SIGMA)
    assert (v.status, v.baseline_runs) == ("breach", 6)


# Reference for rolling/frozen, cusum and ewma, 1000 answered per run:
#   900, 940, 900, 940, 920 -> mean 0.92; deviations -2,2,-2,2,0 points -> 16/4 = 4 -> sd 0.02
#   floor at n=1000: sqrt(0.92 x 0.08 / 1000) = 0.00858 < 0.02, so no floor
REFERENCE = runs([900, 940, 900, 940, 920], 1000)


def test_frozen_baseline_catches_slow_drift_that_rolling_absorbs():
    history = REFERENCE + runs([910, 900, 890, 880, 870], 1000)  # -1 point a day
    today = RunPoint(865, 1000, 1000, "v1")
    # frozen: first 5 runs, lower = 0.92 - 2 x 0.02 = 0.88 > 0.865 -> breach
    frozen = evaluate(history, today, DetectionParams(method="sigma_run", window=5, baseline="frozen"))
    assert (frozen.status, round(frozen.lower, 6)) == ("breach", 0.88)
    # rolling: last 5 = 0.91..0.87, mean 0.89, sd sqrt((4+1+0+1+4)e-4 / 4) = 0.015811,
    # floor sqrt(0.89 x 0.11 / 1000) = 0.009894; lower = 0.89 - 0.031623 = 0.858377 < 0.865 -> ok
    rolling = evaluate(history, today, DetectionParams(method="sigma_run", window=5, baseline="rolling"))
    assert rolling.status == "ok"
    assert rolling.lower == pytest.approx(0.858377, abs=1e-6)


def test_cusum_accumulates_a_persistent_small_drop():
    # Each later run at 0.88: z = (0.88 - 0.92) / 0.02 = -2; S_t = max(0, S_{t-1} + 2 - 0.5):
    # 1.5, 3.0, 4.5 (<= h 5: ok), 6.0 (> 5: breach). The sigma rule never fires: 0.88 is not < 0.88.
    params = DetectionParams(method="cusum", window=5)
    at88 = RunPoint(880, 1000, 1000, "v1")
    third = evaluate(REFERENCE + [at88] * 2, at88, params)
    assert (third.status, round(third.statistic, 9)) == ("ok", 4.5)
    fourth = evaluate(REFERENCE + [at88] * 3, at88, params)
    assert (fourth.status, round(fourth.statistic, 9)) == ("breach", 6.0)
    # Threshold for the 4th run: S_prev - z - k > h <=> z < 4.5 - 0.5 - 5 = -1 <=> rate < 0.90.
    assert fourth.lower == pytest.approx(0.90)
    # Just past h: 4th run at 0.89, z = -1.5, S = 4.5 + 1.5 - 0.5 = 5.5 > 5 -> breach.
    past = evaluate(REFERENCE + [at88] * 3, RunPoint(890, 1000, 1000, "v1"), params)
    assert past.status == "breach" and past.statistic == pytest.approx(5.5)
    # Runs made during the alert still feed the sum (they are the shifted runs); not the reference.
    in_alert = REFERENCE + runs([880] * 3, 1000, in_alert=True)
    assert evaluate(in_alert, at88, params).statistic == pytest.approx(6.0)
    assert evaluate(REFERENCE * 2, RunPoint(920, 1000, 1000, "v1"), params).statistic == 0.0


def test_ewma_crosses_its_asymptotic_limit():
    # lambda 0.2, L 2.962: limit = 2.962 x sqrt(0.2/1.8) = 0.987333. z = -2 each run:
    # Z = -0.4, -0.72, -0.976 (ok, > -0.9873), -1.1808 (breach).
    params = DetectionParams(method="ewma", window=5)
    at88 = RunPoint(880, 1000, 1000, "v1")
    third = evaluate(REFERENCE + [at88] * 2, at88, params)
    assert third.status == "ok" and third.statistic == pytest.approx(-0.976)
    fourth = evaluate(REFERENCE + [at88] * 3, at88, params)
    assert fourth.status == "breach" and fourth.statistic == pytest.approx(-1.1808)
    # Threshold: z < (-0.987333 + 0.8 x 0.976) / 0.2 = -1.032667
    #   -> rate < 0.92 - 0.020653 = 0.899347
    assert fourth.lower == pytest.approx(0.899347, abs=1e-6)


def _binom_cdf(k: int, n: int, p: float) -> float:
    return math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def test_binomial_exact_test_against_the_pooled_rate():
    # 5 runs of 27/30: pooled p = 135/150 = 0.9. P(X <= 22 | 30, 0.9) = 0.00778 < 0.01 -> breach;
    # P(X <= 23) = 0.0258 >= 0.01 -> ok. So the threshold rate is 23/30.
    params = DetectionParams(method="binomial")
    history = runs([27] * 5, 30)
    v = evaluate(history, RunPoint(22, 30, 30, "v1"), params)
    assert v.status == "breach"
    assert v.statistic == pytest.approx(_binom_cdf(22, 30, 0.9), rel=1e-9)
    assert v.lower == pytest.approx(23 / 30)
    ok = evaluate(history, RunPoint(23, 30, 30, "v1"), params)
    assert ok.status == "ok" and ok.statistic == pytest.approx(_binom_cdf(23, 30, 0.9), rel=1e-9)
    # A flat 100% pool (150/150) is clamped to 1 - 0.5/150:
    #   P(X <= 29) = 1 - (299/300)^30 = 0.0952 -> ok
    flat = evaluate(runs([30] * 5, 30), RunPoint(29, 30, 30, "v1"), params)
    assert flat.status == "ok" and flat.statistic == pytest.approx(1 - (299 / 300) ** 30)


def test_pool_sums_a_run_and_its_confirmation():
    both = pool(RunPoint(14, 15, 16, "v1"), RunPoint(13, 15, 15, "v1", in_alert=True))
    assert both == RunPoint(27, 30, 31, "v1", True)
    with pytest.raises(ValueError):
        pool(RunPoint(1, 1, 1, "v1"), RunPoint(1, 1, 1, "v2"))


def test_params_are_validated():
    with pytest.raises(ValueError, match="method"):
        DetectionParams(method="median")
    with pytest.raises(ValueError, match="min_history"):
        DetectionParams(window=3, min_history=5)


def test_band_two_sided():
    # 10, 12, 10, 12, 11: mean 11, sd sqrt((1+1+1+1+0)/4) = 1; band 11 +- 2 = [9, 13]
    values = [10, 12, 10, 12, 11]
    high = band(values, 13.5, 2.0, 14, 5)
    assert (high.status, high.lower, high.upper) == ("breach", 9.0, 13.0)
    assert band(values, 8.9, 2.0, 14, 5).status == "breach"
    assert band(values, 12.9, 2.0, 14, 5).status == "ok"
    # window 3 keeps 10, 12, 11 (None skipped, not imputed): mean 11, sd 1 again
    assert band([500, None, 10, 12, 11], 13.5, 2.0, 3, 3).status == "breach"
    assert band(values[:4], 100.0, 2.0, 14, 5).status == "no_verdict"
    # flat 100: sd 0 floored at 1% of the mean = 1 -> [98, 102]
    assert band([100] * 5, 100.5, 2.0, 14, 5).status == "ok"
    assert band([100] * 5, 103, 2.0, 14, 5).status == "breach"


def test_a_confirmation_pools_per_case_counts_too():
    a = RunPoint(3, 4, 4, "v1", cases={"x": (2, 2), "y": (1, 2)})
    b = RunPoint(1, 3, 4, "v1", cases={"x": (0, 1), "y": (1, 2)})
    assert pool(a, b).cases == {"x": (2, 3), "y": (2, 4)}


def test_a_stored_verdict_reads_back_whatever_keys_it_was_kept_with():
    v = Verdict("breach", "sigma", 0.7, 0.9, 0.05, 0.8, 14, "why", statistic=-4.0, check="reference")
    assert Verdict.from_stored(v.stored()) == v
    older = {k: val for k, val in v.stored().items() if k != "check"}  # kept before `check` existed
    assert Verdict.from_stored(older).check == "rolling"  # the default
    assert Verdict.from_stored({**v.stored(), "retired_key": 1}) == v
