"""Case-level detection: a suite is a fixed set of cases with their own pass rates, not coin flips.

Pure functions of per-case counts (no DB, no clock, no numpy), shared by `monitor`, the
simulations of `power` (calibrate, status, the benchmark) and the reports.

The expectation of a day, `expect(base, today)`: case i passed x_i of m_i answered samples
in the baseline; its rate is shrunk with a Beta(a, a) prior, p_i = (x_i+a)/(m_i+2a), a =
PRIOR = 1.25 (a case that never failed in 42 samples is expected to fail now and then, not
never). Today it passed k_i of n_i answered samples (today's answered mix: errors change
which cases count). Each k_i is predicted by the Beta-binomial (the binomial at p_i,
widened by the uncertainty of p_i itself): mean n_i p_i, variance n_i p_i (1-p_i)
(m_i+2a+n_i)/(m_i+2a+1). Summed over the cases: E = sum n_i p_i and V (Poisson-binomial
plus estimation variance). Today breaches when passed < E - sigma * sd, sd = sqrt(V)
floored at 1/sigma: the threshold is always at least one sample below E, so one wrong
sample never breaches a flat-100% series.

The prior's weight is this detector's calibration constant, as L is an EWMA chart's. On the
reference suite of tests/benchmarks/detector_arl.py (21 cases x 3 samples, mixed case
rates), sigma 2 with confirmation: a = 1.25 gives 0.10 false alarms per series-year and
catches 95.7% of a 10-point drop within 3 runs (slow-slide guard included); a = 1.3 catches
94.6%, a = 1.2 raises the false alarms to 0.16, a = 1 (uniform) to 0.25 and a = 0.5
(Jeffreys) to 0.96 (those two without the guard). The caution falls on cases that never
fail, so a suite of middling cases gets fewer of its benefits (iid p = .9: 1.65).

- `case_sigma`: the rolling check, baseline = the last `window` eligible runs.
- `slide`: the slow-slide guard. The *reference* is the first `window` eligible runs of
  today's suite version after the last ack (runs in an alert never count); the *recent
  level* is today pooled with the runs just before it (at least `slide_runs` runs and
  `slide_samples` answered samples, none of them in the reference; runs made during an
  alert count: they are the level now). Breach when the recent level is more than `sigma`
  sds below what the reference expects of the same cases. Pooling several runs is what
  lets it see a drop that each day's rolling check, one run against a window that keeps
  learning, does not.
- `changes`: today's failing cases, the news first (cases that passed in the baseline).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from .detect import DetectionParams, RunPoint, Verdict, num, pct, pool_cases, same_series

Cases = Mapping[str, tuple[int, int]]  # case id -> (passed, answered)

RELIABLE = 0.9  # a case that passed at least this share of its baseline samples: its failure is news
PRIOR = 1.25  # a case's pass rate has a Beta(PRIOR, PRIOR) prior (see the module docstring)
HOPELESS = 0.1  # a case that passed at most this share: its failure is no news (summarised as a count)


@dataclass(frozen=True)
class Expectation:
    passed: int  # today's passed samples (the cases answered today)
    answered: int
    expected: float  # E
    sd: float  # sqrt(V) floored at 1/sigma

    @property
    def z(self) -> float:
        return (self.passed - self.expected) / self.sd

    @property
    def rate(self) -> float:
        return self.passed / self.answered

    @property
    def mean(self) -> float:
        """The expected pass rate."""
        return self.expected / self.answered

    def lower(self, sigma: float) -> float:
        """The pass rate below which today breaches."""
        return (self.expected - sigma * self.sd) / self.answered


def expect(base: Cases, today: Cases, sigma: float) -> Expectation:
    """Today's expected passes and their sd, case by case (see the module docstring)."""
    a = PRIOR
    e = v = 0.0
    k_sum = n_sum = 0
    for case, (k, n) in today.items():
        if n <= 0:
            continue
        x, m = base.get(case, (0, 0))
        p = (x + a) / (m + 2 * a)
        e += n * p
        v += n * p * (1 - p) * (m + 2 * a + n) / (m + 2 * a + 1)
        k_sum += k
        n_sum += n
    return Expectation(k_sum, n_sum, e, max(math.sqrt(v), 1 / sigma))


def _require_cases(run: RunPoint) -> None:
    if run.answered and not run.cases:
        raise ValueError("case-level detection needs per-case counts (RunPoint.cases)")


def case_sigma(base: Sequence[RunPoint], today: RunPoint, params: DetectionParams) -> Verdict:
    """The rolling check: today against the baseline runs, case by case."""
    _require_cases(today)
    for r in base:
        _require_cases(r)
    x = expect(pool_cases(r.cases for r in base), today.cases, params.sigma)
    lower = x.lower(params.sigma)
    breach = x.rate < lower
    reason = (f"pass rate {pct(x.rate, lower)} ({x.passed}/{x.answered}) {'<' if breach else '>='} {pct(lower, x.rate)} "
              f"= expected {pct(x.mean)} (each case at its baseline rate) - {num(params.sigma)} x sd "
              f"{pct(x.sd / x.answered)}, {len(base)} runs")
    return Verdict("breach" if breach else "ok", "sigma", x.rate, x.mean, x.sd / x.answered, lower, len(base),
                   reason, statistic=x.z)


@dataclass(frozen=True)
class Slide:
    """The slow-slide guard's verdict: the recent level against the reference."""

    breach: bool
    rate: float  # the recent level: pooled pass rate of the recent runs
    expected: float  # what the reference expects of the same cases
    lower: float  # the recent level breaches below this
    z: float
    runs: int  # recent runs pooled (today included)
    reference_start: int  # index in `history` of the reference's first run (its date, for people)
    reason: str

    @property
    def points(self) -> float:
        """How many points the recent level is below the reference's expectation."""
        return 100 * (self.expected - self.rate)


def _reference(series: list[tuple[int, RunPoint]], window: int) -> list[tuple[int, RunPoint]]:
    return [(i, r) for i, r in series if not r.in_alert][:window]


def reference(history: Sequence[RunPoint], today: RunPoint, params: DetectionParams) -> list[RunPoint]:
    """The slide guard's reference: the first `window` eligible runs (fewer while there are fewer)."""
    return [r for _, r in _reference(same_series(history, today, params.min_answered_share), params.window)]


def slide(history: Sequence[RunPoint], today: RunPoint, params: DetectionParams) -> Slide | None:
    """The recent level against the reference; None until both exist (see the module docstring)."""
    series = same_series(history, today, params.min_answered_share)
    reference = _reference(series, params.window)
    if len(reference) < params.window:
        return None
    after = [r for i, r in series if i > reference[-1][0]]
    recent, answered = [today], today.answered
    while after and (len(recent) < params.slide_runs or answered < params.slide_samples):
        recent.append(after.pop())
        answered += recent[-1].answered
    if len(recent) < params.slide_runs or answered < params.slide_samples:
        return None
    for r in [today] + [r for _, r in reference] + recent:
        _require_cases(r)
    x = expect(pool_cases(r.cases for _, r in reference), pool_cases(r.cases for r in recent), params.sigma)
    lower = x.lower(params.sigma)
    breach = x.rate < lower
    reason = (f"last {len(recent)} runs {pct(x.rate, lower)} ({x.passed}/{x.answered}) {'<' if breach else '>='} "
              f"{pct(lower, x.rate)} = {pct(x.mean)} expected from the reference (the first {params.window} runs "
              f"after the last ack) - {num(params.sigma)} x sd {pct(x.sd / x.answered)}")
    return Slide(breach, x.rate, x.mean, lower, x.z, len(recent), reference[0][0], reason)


@dataclass(frozen=True)
class CaseChange:
    """One case failing today, with its baseline record."""

    case: str
    passed: int  # today
    answered: int
    base_passed: int
    base_answered: int

    @property
    def base_rate(self) -> float | None:
        return self.base_passed / self.base_answered if self.base_answered else None

    @property
    def kind(self) -> str:
        """newly_failing (it used to pass) | always_failing (it hardly ever did) | no_baseline | flaky."""
        return {"newly": "newly_failing", "always": "always_failing", "no_baseline": "no_baseline",
                "often": "flaky"}[standing(self.base_passed, self.base_answered)]


def standing(baseline_passed: int, baseline_answered: int) -> str:
    """A failing case's record in its baseline, for every place that names it (Slack, `canary
    failures`, the report): newly (it passed at least RELIABLE of its samples) | always (at
    most HOPELESS) | often (in between) | no_baseline."""
    if not baseline_answered:
        return "no_baseline"
    rate = baseline_passed / baseline_answered
    return "newly" if rate >= RELIABLE else "always" if rate <= HOPELESS else "often"


def changes(base: Sequence[RunPoint], today: RunPoint) -> list[CaseChange]:
    """Today's failing cases: newly failing first (the most reliable before, the most failing
    now), then flaky, then those that always fail."""
    pooled = pool_cases(r.cases for r in base)
    failing = [CaseChange(c, k, n, *pooled.get(c, (0, 0))) for c, (k, n) in today.cases.items() if k < n]
    order = {"newly_failing": 0, "no_baseline": 1, "flaky": 1, "always_failing": 2}
    return sorted(failing, key=lambda c: (order[c.kind], -(c.base_rate or 0), c.passed / c.answered, c.case))
