"""The statistics of `canary compare` against known answers: published intervals, brute-force
likelihoods, the textbook CMH and McNemar statistics, and verdicts worked out by hand."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
import pytest

from canary import compare
from canary.compare import (Price, difference_interval, restricted_mle, samples_to_settle, score, stratified_wilson,
                            verdict_of, wilson, worst, z_value)

Z = z_value()


@dataclass
class S:
    """One model's samples of one case."""

    passed: int
    failed: int
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latencies_ms: list = field(default_factory=list)


def suite(rates: list[tuple[int, int]]) -> dict[str, S]:
    return {f"c{i:02d}": S(p, n - p) for i, (p, n) in enumerate(rates)}


def test_wilson_matches_newcombes_published_intervals():
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (score, no continuity correction)
    for (x, n), (lo, hi) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                             (1, 29): (0.0061, 0.1718)}.items():
        got = wilson(x / n, n, Z)
        assert got == pytest.approx((lo, hi), abs=5e-5)


def test_stratified_wilson_is_wilson_at_the_harmonic_count():
    # equal counts: the plain Wilson interval of the pooled proportion
    assert stratified_wilson([1.0, 0.5, 0.5], [4, 4, 4], Z) == pytest.approx(wilson(8 / 12, 12, Z))
    # unequal counts: n = k^2 / sum(1/n_i) = 9 / (1/2 + 1/4 + 1/4) = 9
    assert stratified_wilson([1.0, 0.5, 0.5], [2, 4, 4], Z) == pytest.approx(wilson(2 / 3, 9, Z))


def test_one_stratum_is_the_miettinen_nurminen_interval_newcombe_publishes():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, example (a): 56/70 - 48/80, method 6
    estimate, low, high, _ = difference_interval([48], [80], [56], [70], Z)
    assert estimate == pytest.approx(0.2)
    assert (low, high) == pytest.approx((0.0528, 0.3382), abs=5e-5)


def test_the_restricted_mle_maximises_the_likelihood():
    rng = random.Random(4)
    for _ in range(400):
        nb, na = rng.randint(1, 9), rng.randint(1, 9)
        xb, xa = rng.randint(0, nb), rng.randint(0, na)
        delta = rng.choice([0.0, -0.05, 0.05, -0.6, 0.9, rng.uniform(-0.99, 0.99)])
        p1, p2 = (float(v) for v in restricted_mle(xb / nb, nb, xa / na, na, delta))
        assert p1 - p2 == pytest.approx(delta, abs=1e-9)

        def loglik(q):  # B's rate q, A's q - delta; 0 * log 0 = 0
            q = np.atleast_1d(q)
            with np.errstate(divide="ignore"):
                terms = [(xb, q), (nb - xb, 1 - q), (xa, q - delta), (na - xa, 1 - q + delta)]
                return sum(np.where(k > 0, k * np.log(np.maximum(v, 0.0)), 0.0) for k, v in terms)

        lo, hi = max(0.0, delta), min(1.0, 1.0 + delta)
        best = loglik(np.linspace(lo, hi, 20001)[1:-1]).max()
        assert float(loglik(min(max(p1, lo + 1e-12), hi - 1e-12))[0]) >= best - 1e-6


def test_the_score_at_zero_is_the_cmh_statistic_and_mcnemars_for_single_samples():
    rng = np.random.default_rng(3)
    r, k = 4, 12
    xa, xb = rng.integers(0, r + 1, k), rng.integers(0, r + 1, k)
    z0, _ = score(xa, [r] * k, xb, [r] * k, 0.0)
    # Cochran-Mantel-Haenszel, textbook form: sum(B's passes - expected) over the hypergeometric variances
    m1, big = xa + xb, 2 * r
    expected = r * m1 / big
    variance = r * r * m1 * (big - m1) / (big * big * (big - 1))
    cmh = (xb - expected).sum() / math.sqrt(variance.sum())
    assert float(z0) == pytest.approx(cmh)
    # one sample per case: McNemar's (b - c) / sqrt(b + c), b = B-only passes, c = A-only passes
    a1 = np.array([1, 1, 0, 1, 1, 0, 1, 1, 1, 0])
    b1 = np.array([1, 0, 0, 1, 0, 1, 0, 1, 0, 0])
    b, c = int(((b1 == 1) & (a1 == 0)).sum()), int(((a1 == 1) & (b1 == 0)).sum())
    assert float(score(a1, [1] * 10, b1, [1] * 10, 0.0)[0]) == pytest.approx((b - c) / math.sqrt(b + c))


def test_a_b_that_breaks_three_cases_is_worse_with_exactly_those_regressed():
    a = suite([(3, 3)] * 21)
    b = suite([(3, 3)] * 18 + [(0, 3)] * 3)
    c = compare.compare("reasoning", "A", a, "B", b)
    assert c.verdict == "worse" and c.high < 0 and c.p_value < 0.001
    assert c.difference == pytest.approx(-3 / 21)
    assert [d.case for d in c.regressed] == ["c18", "c19", "c20"] and all(d.flipped for d in c.regressed)
    assert c.improved == [] and c.more_samples_per_case is None


def test_all_passing_is_no_worse_only_with_enough_samples():
    same = suite([(5, 5)] * 21)
    assert compare.compare("s", "A", same, "B", same).verdict == "no_worse"
    few = suite([(3, 3)] * 21)
    c = compare.compare("s", "A", few, "B", few)
    assert c.verdict == "inconclusive" and c.low < -0.05 < 0 < c.high and c.p_value == 1.0
    # the projection: at the observed rates, 3 + more samples settle it, one fewer does not
    n = 3 + c.more_samples_per_case
    assert compare.compare("s", "A", suite([(n, n)] * 21), "B", suite([(n, n)] * 21)).verdict == "no_worse"
    assert compare.compare("s", "A", suite([(n - 1, n - 1)] * 21), "B",
                           suite([(n - 1, n - 1)] * 21)).verdict == "inconclusive"


def test_one_miss_on_a_small_suite_cannot_be_judged():
    c = compare.compare("tiny", "A", suite([(1, 1)] * 3), "B", suite([(1, 1), (1, 1), (0, 1)]))
    assert c.verdict == "inconclusive" and c.low < -0.05 and c.high > 0
    assert c.p_value == pytest.approx(math.erfc(1 / math.sqrt(2)))  # McNemar, one discordant pair: z = -1
    assert [d.case for d in c.regressed] == ["c02"]  # flipped in its only sample: listed, not significant
    needed = samples_to_settle([1, 1, 1], [1, 1, 0], 0.05, Z, start=2)
    assert c.more_samples_per_case == needed - 1
    n = needed
    assert compare.compare("t", "A", suite([(n, n)] * 3), "B", suite([(n, n), (n, n), (0, n)])).verdict == "worse"


def test_a_small_sure_drop_within_the_margin_is_no_worse_and_worse_at_margin_zero():
    a = suite([(200, 200)] * 20)
    b = suite([(196, 200)] * 20)  # 2 points below A on every case
    c = compare.compare("s", "A", a, "B", b)
    assert c.verdict == "no_worse" and -0.05 < c.low < c.high < 0
    assert compare.compare("s", "A", a, "B", b, margin=0.0).verdict == "worse"
    assert compare.compare("s", "A", b, "B", a).verdict == "better"


def test_case_level_significance_without_a_flip():
    c = compare.compare("s", "A", suite([(5, 5), (5, 5), (5, 5)]), "B", suite([(1, 5), (2, 5), (5, 5)]))
    assert [(d.case, d.flipped) for d in c.regressed] == [("c00", False)]  # Fisher p = 0.048
    assert c.regressed[0].p_value == pytest.approx(12 / 252)  # Fisher: tables 5-vs-1 and 1-vs-5, 6 / C(10, 5) each
    improved = compare.compare("s", "A", suite([(0, 4)]), "B", suite([(4, 4)])).improved
    assert [(d.case, d.flipped) for d in improved] == [("c00", True)]


def test_errors_are_left_out_of_both_sides_and_counted():
    a = {"x": S(2, 0, errors=1), "y": S(1, 1), "z": S(2, 0)}
    b = {"x": S(2, 0), "y": S(0, 0, errors=2), "z": S(1, 1, errors=1)}
    c = compare.compare("s", "A", a, "B", b)
    assert c.cases == 2 and c.unpaired == ["y"]  # y: B answered nothing
    assert (c.a.passed, c.a.answered, c.b.passed, c.b.answered) == (4, 4, 3, 4)
    assert (c.a.errors, c.b.errors) == (1, 3) and c.a.error_share == pytest.approx(1 / 7)
    assert c.b.error_share == pytest.approx(3 / 7)
    assert c.b.pass_rate == pytest.approx(0.75) and c.difference == pytest.approx(-0.25)


def test_cost_and_tokens_per_correct_answer():
    price = Price(input=5.0, output=25.0)
    a = {"x": S(2, 0, input_tokens=200, output_tokens=100, latencies_ms=[10, 30]),
         "y": S(1, 1, input_tokens=200, output_tokens=300, latencies_ms=[20, 40])}
    b = {"x": S(2, 0, input_tokens=200, output_tokens=60, latencies_ms=[5, 5]),
         "y": S(1, 1, input_tokens=200, output_tokens=180, latencies_ms=[5, 7])}
    c = compare.compare("s", "A", a, "B", b, price_a=price, price_b=price)
    # A: 400 output tokens over 4 samples of which 3 passed; B the same answers with 60% of the tokens
    assert c.a.tokens_per_pass == pytest.approx(400 / 3) and c.b.tokens_per_pass == pytest.approx(240 / 3)
    assert c.a.cost_per_pass == pytest.approx((400 * 5 + 400 * 25) / 1e6 / 3)
    assert c.b.cost_per_pass == pytest.approx((400 * 5 + 240 * 25) / 1e6 / 3)
    assert (c.a.latency_p50_ms, c.b.latency_p50_ms) == (25, 5)
    assert compare.compare("s", "A", a, "B", b).a.cost_per_pass is None  # no price, no cost


def test_the_verdict_read_from_scores_is_the_intervals():
    rng = np.random.default_rng(11)
    for _ in range(60):
        k, r = int(rng.integers(2, 12)), int(rng.integers(1, 6))
        xa, xb = rng.integers(0, r + 1, k), np.clip(rng.integers(0, r + 1, k) - rng.integers(0, 2, k), 0, r)
        n = [r] * k
        estimate, low, high, p = difference_interval(xa, n, xb, n, Z)
        z0, zm = float(score(xa, n, xb, n, 0.0)[0]), float(score(xa, n, xb, n, -0.05)[0])
        expected = ("better" if low > 0 else "no_worse" if low > -0.05 else "worse" if high < 0 else "inconclusive")
        assert verdict_of(z0, zm, Z) == expected
        assert (p < 0.05) == (low > 0 or high < 0)


def test_the_overall_verdict_is_the_worst():
    assert worst(["better", "no_worse", "inconclusive"]) == "inconclusive"
    assert worst(["better", "worse", "inconclusive"]) == "worse"
    assert worst(["better", "no_worse"]) == "no_worse" and worst([]) == "inconclusive"
