"""Can B replace A? The statistics of a migration verdict: per-case samples in, verdict out.

Both models answered the same cases, so every case is a stratum of its own: the samples of
one case are independent draws of that case's pass probability (one per model), and cases
differ wildly from each other (most always pass, a few are hard). Pooling every sample as
if it were one coin (a Fisher test on the totals) ignores that and overstates significance;
a stratified analysis compares the models case by case and never mixes cases.

- Each model's pass rate: the mean over the paired cases of each case's pass fraction (so
  both models are judged on the same mix even when errors remove a few samples; it is
  passed/answered when every case has the same count), with the stratified Wilson interval
  (Yan & Su 2010): Wilson's score interval at n = k^2 / sum(1/n_i).
- The difference B - A: the same mean of per-case differences, with the Miettinen-Nurminen
  stratified score interval (each case a stratum, equal weights), the usual interval of
  non-inferiority trials on a binary outcome. Its test at 0 is the Cochran-Mantel-Haenszel
  test (McNemar's when each model has one sample per case): that is the p value.
- Verdict at a margin m: `better` when the interval is above 0, `no_worse` when above -m
  (non-inferiority), `worse` when below 0 and not above -m, else `inconclusive`.
- A case regressed when A passes it more often than B, significantly (Fisher's exact test
  on that case's samples) or in every sample (A passed all, B failed all).

The inference is about this suite's cases: "on these prompts, B passes less often". Errors
(service failures) are excluded from both sides and counted. No database, no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist, median
from typing import Mapping, Protocol, Sequence

LEVEL = 0.95
VERDICTS = ("worse", "inconclusive", "no_worse", "better")  # worst first: overall = the worst suite's
CASE_ALPHA = 0.05  # Fisher's test of one case, for the regressed and improved lists
MAX_SAMPLES = 10_000  # per case and model: beyond this, "more samples" is not an answer
_BISECTIONS = 60


class Samples(Protocol):
    """One model's samples of one case (pooled over runs); tokens and latencies of the answered ones."""

    passed: int
    failed: int
    errors: int
    input_tokens: int
    output_tokens: int
    latencies_ms: Sequence[float]


@dataclass(frozen=True)
class Price:
    input: float  # USD per million tokens
    output: float

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


@dataclass
class ModelStats:
    name: str
    pass_rate: float | None  # mean over the paired cases of each case's pass fraction
    low: float | None  # stratified Wilson interval
    high: float | None
    passed: int  # over the paired cases
    answered: int
    errors: int  # over every case of the suite: excluded from the comparison, counted here
    error_share: float | None
    tokens_per_pass: float | None  # output tokens per passed sample
    cost_per_pass: float | None  # USD per passed sample, from the price
    latency_p50_ms: float | None


@dataclass
class CaseDiff:
    case: str
    a_passed: int
    a_answered: int
    b_passed: int
    b_answered: int
    p_value: float  # Fisher's exact test, two-sided
    flipped: bool  # one model passed every sample, the other failed every sample


@dataclass
class Comparison:
    """A against B on a set of cases (a suite, or every suite together)."""

    name: str
    margin: float  # as a fraction (0.05 = 5 points)
    a: ModelStats
    b: ModelStats
    cases: int  # paired: answered at least once by each model
    unpaired: list[str]  # answered by one model only (or by neither): left out
    difference: float | None  # B - A, mean over the paired cases
    low: float | None
    high: float | None
    p_value: float | None
    verdict: str
    regressed: list[CaseDiff] = field(default_factory=list)  # A passes more often than B
    improved: list[CaseDiff] = field(default_factory=list)
    samples_per_case: float = 0.0  # answered per case per model (the smaller of the two)
    more_samples_per_case: int | None = None  # inconclusive: how many more would settle it, at the observed rates


# --- the intervals -------------------------------------------------------------------------

def z_value(level: float = LEVEL) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion p observed over n (possibly fractional) trials."""
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z / n
    centre = (p + z2 / 2) / (1 + z2)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n)) / (1 + z2)
    return max(0.0, centre - half), min(1.0, centre + half)


def stratified_wilson(rates: Sequence[float], counts: Sequence[int], z: float) -> tuple[float, float]:
    """Yan & Su's stratified Wilson interval of the mean of per-case rates (equal weights)."""
    k = len(rates)
    return wilson(sum(rates) / k, k * k / sum(1 / n for n in counts), z)


def restricted_mle(pb, nb, pa, na, delta):
    """The maximum-likelihood (pB, pA) of each stratum under pB - pA = delta (Miettinen &
    Nurminen 1985; Farrington & Manning 1990's closed form). numpy arrays or floats."""
    import numpy as np
    theta = na / nb
    a = 1 + theta
    b = -(1 + theta + pb + theta * pa + delta * (theta + 2))
    c = delta * delta + delta * (2 * pb + theta + 1) + pb + theta * pa
    d = -pb * delta * (1 + delta)
    v = b ** 3 / (3 * a) ** 3 - b * c / (6 * a * a) + d / (2 * a)
    u = np.where(v < 0, -1.0, 1.0) * np.sqrt(np.maximum(b * b / (3 * a) ** 2 - c / (3 * a), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(u == 0, 0.0, v / np.where(u == 0, 1.0, u) ** 3)
    w = (math.pi + np.arccos(np.clip(ratio, -1.0, 1.0))) / 3
    p1 = np.clip(2 * u * np.cos(w) - b / (3 * a), np.maximum(0.0, delta), np.minimum(1.0, 1.0 + delta))
    return p1, p1 - delta


def score(xa, na, xb, nb, delta):
    """The Miettinen-Nurminen stratified score statistic of H0: mean(pB - pA) = delta, each
    case a stratum with equal weight. Arrays over cases on the last axis (leading axes are
    independent comparisons, as the power benchmark uses). Returns (Z, estimate); Z falls
    as delta rises, and Z at 0 is the Cochran-Mantel-Haenszel statistic."""
    import numpy as np
    xa, na, xb, nb = (np.asarray(v, dtype=float) for v in (xa, na, xb, nb))
    pa, pb = xa / na, xb / nb
    k = pa.shape[-1]
    estimate = (pb - pa).mean(axis=-1)
    p1, p2 = restricted_mle(pb, nb, pa, na, delta)
    total = na + nb
    var = (p1 * (1 - p1) / nb + p2 * (1 - p2) / na) * total / (total - 1)
    se = np.sqrt(np.maximum(var, 0.0).sum(axis=-1)) / k
    gap = estimate - delta
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, gap / np.where(se > 0, se, 1.0), np.sign(gap) * np.inf)
    return np.where((se == 0) & (gap == 0), 0.0, z), estimate


def verdict_of(z_at_zero, z_at_margin, z: float) -> str:
    """The verdict from the score at 0 and at -margin (the same as reading the interval)."""
    if z_at_zero > z:
        return "better"
    if z_at_margin > z:
        return "no_worse"
    if z_at_zero < -z:
        return "worse"
    return "inconclusive"


def _decide(xa, na, xb, nb, margin: float, z: float) -> str:
    z0 = float(score(xa, na, xb, nb, 0.0)[0])
    zm = float(score(xa, na, xb, nb, -margin)[0])
    return verdict_of(z0, zm, z)


def difference_interval(xa, na, xb, nb, z: float) -> tuple[float, float, float, float]:
    """(estimate, low, high, two-sided p at 0) of mean(pB - pA): the score test inverted."""
    z0, estimate = score(xa, na, xb, nb, 0.0)
    estimate = float(estimate)

    def root(target: float, lo: float, hi: float) -> float:  # score(delta) = target, score falling
        for _ in range(_BISECTIONS):
            mid = (lo + hi) / 2
            if float(score(xa, na, xb, nb, mid)[0]) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    low = -1.0 if estimate <= -1 else root(z, -1.0, estimate)
    high = 1.0 if estimate >= 1 else root(-z, estimate, 1.0)
    p = 2 * (1 - NormalDist().cdf(abs(float(z0))))
    return estimate, low, high, min(1.0, p)


def samples_to_settle(rates_a: Sequence[float], rates_b: Sequence[float], margin: float, z: float,
                      start: int = 1) -> int | None:
    """The smallest number of samples per case and model (>= start) whose verdict is not
    inconclusive if every case kept its observed pass rates; None beyond MAX_SAMPLES."""
    def decided(n: int) -> bool:
        return _decide([r * n for r in rates_a], [n] * len(rates_a), [r * n for r in rates_b],
                       [n] * len(rates_b), margin, z) != "inconclusive"

    lo, hi = max(1, start), MAX_SAMPLES
    if not decided(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if decided(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def fisher_p(a_passed: int, a_answered: int, b_passed: int, b_answered: int) -> float:
    from scipy.stats import fisher_exact
    table = [[a_passed, a_answered - a_passed], [b_passed, b_answered - b_passed]]
    return float(fisher_exact(table).pvalue)


# --- one comparison ---------------------------------------------------------------------------

def _model_stats(name: str, cases: Mapping[str, Samples], paired: list[str], price: Price | None,
                 z: float) -> ModelStats:
    every = list(cases.values())
    errors = sum(s.errors for s in every)
    attempted = sum(s.passed + s.failed + s.errors for s in every)
    ours = [cases[c] for c in paired]
    if not ours:
        return ModelStats(name, None, None, None, 0, 0, errors, errors / attempted if attempted else None,
                          None, None, None)
    counts = [s.passed + s.failed for s in ours]
    rates = [s.passed / n for s, n in zip(ours, counts)]
    low, high = stratified_wilson(rates, counts, z)
    # per passed sample, with each case weighing the same as in the pass rate
    passes = sum(rates)
    tokens = sum(s.output_tokens / n for s, n in zip(ours, counts))
    cost = sum(price.cost(s.input_tokens, s.output_tokens) / n for s, n in zip(ours, counts)) if price else None
    latencies = [x for s in ours for x in s.latencies_ms]
    return ModelStats(
        name, sum(rates) / len(rates), low, high, sum(s.passed for s in ours), sum(counts), errors,
        errors / attempted if attempted else None,
        tokens / passes if passes else None, cost / passes if passes and cost is not None else None,
        median(latencies) if latencies else None)


def _case_diffs(paired: list[str], a: Mapping[str, Samples], b: Mapping[str, Samples]):
    regressed, improved = [], []
    for case in paired:
        sa, sb = a[case], b[case]
        na, nb = sa.passed + sa.failed, sb.passed + sb.failed
        ra, rb = sa.passed / na, sb.passed / nb
        if ra == rb:
            continue
        flipped = (sa.passed, sb.passed) in ((na, 0), (0, nb))
        p = fisher_p(sa.passed, na, sb.passed, nb)
        if flipped or p < CASE_ALPHA:
            (regressed if ra > rb else improved).append(CaseDiff(case, sa.passed, na, sb.passed, nb, p, flipped))
    order = (lambda d: (d.b_passed / d.b_answered - d.a_passed / d.a_answered, d.p_value, d.case))
    return sorted(regressed, key=order), sorted(improved, key=lambda d: (-order(d)[0], d.p_value, d.case))


def compare(name: str, a_name: str, a: Mapping[str, Samples], b_name: str, b: Mapping[str, Samples], *,
            margin: float = 0.05, price_a: Price | None = None, price_b: Price | None = None,
            level: float = LEVEL) -> Comparison:
    """Compare two models on the cases both answered: rates, the paired difference, the verdict."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be a fraction in [0, 1), got {margin}")
    z = z_value(level)
    answered = (lambda s: s.passed + s.failed)
    paired = sorted(c for c in set(a) & set(b) if answered(a[c]) and answered(b[c]))
    unpaired = sorted((set(a) | set(b)) - set(paired))
    stats_a = _model_stats(a_name, a, paired, price_a, z)
    stats_b = _model_stats(b_name, b, paired, price_b, z)
    result = Comparison(name, margin, stats_a, stats_b, len(paired), unpaired, None, None, None, None, "inconclusive")
    if not paired:
        return result
    xa = [a[c].passed for c in paired]
    na = [answered(a[c]) for c in paired]
    xb = [b[c].passed for c in paired]
    nb = [answered(b[c]) for c in paired]
    result.difference, result.low, result.high, result.p_value = difference_interval(xa, na, xb, nb, z)
    result.verdict = _decide(xa, na, xb, nb, margin, z)
    result.regressed, result.improved = _case_diffs(paired, a, b)
    result.samples_per_case = min(sum(na), sum(nb)) / len(paired)
    if result.verdict == "inconclusive":
        needed = samples_to_settle([x / n for x, n in zip(xa, na)], [x / n for x, n in zip(xb, nb)], margin, z,
                                   start=math.floor(result.samples_per_case) + 1)
        result.more_samples_per_case = None if needed is None else max(1, math.ceil(needed - result.samples_per_case))
    return result


def worst(verdicts: Sequence[str]) -> str:
    """The overall verdict: the worst of the suites' (inconclusive when there is none)."""
    return min(verdicts, key=VERDICTS.index) if verdicts else "inconclusive"
