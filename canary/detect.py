"""Regression detectors: pure functions of one (model, suite) series, no DB, no clock, no I/O.

The caller passes the completed runs of one series since the last `canary ack`, oldest
first, and today's run (never part of `history`); `evaluate` returns a `Verdict`.

Common rules, for every method:
- Only runs with today's `suite_version` count: a changed suite starts a new series.
- A run is *answered enough* when answered > 0 and answered >= min_answered_share *
  samples. Today not answered enough -> `no_verdict` (an outage is not a regression, and
  nothing is imputed). History runs not answered enough are skipped.
- Runs made while an alert was open (`in_alert`) never enter a baseline or a reference.
- Fewer than `min_history` baseline runs -> `no_verdict`.

Methods:
- sigma (default): case level, see canary/caselevel.py: each case's own baseline rate,
  today's expected passes and their Beta-binomial sd over today's answered cases. The
  baseline follows `baseline`, as for sigma_run.
- sigma_run: the same rule on run pass rates (cases taken as coin flips of one rate).
  Baseline = the last `window` eligible runs (`baseline="rolling"`) or the first `window`
  of them (`"frozen"`: slow drift that a rolling mean absorbs is still
  caught). r_i = passed/answered; mean and sample sd (ddof=1; 0 for a single run). The sd
  is floored at the binomial sd sqrt(p(1-p)/n) at TODAY's answered count n, p = the mean
  clamped into [0.5/n, 1-0.5/n]. The clamp (half a sample at today's granularity) is what
  keeps a flat 100% history from alerting on one wrong sample: the floor is then about
  0.71/n, so 2-sigma tolerates a 1/n drop but not 2/n. (Clamping at the pooled baseline
  count instead, 0.5/420 for 14 runs of 30, gives a floor of 0.0063 and a threshold of
  98.7%: one wrong of 30 would alert.) Breach when rate < mean - sigma*sd.
- cusum: one-sided lower tabular CUSUM on z_t = (r_t - mean)/sd_t, with mean and sample
  sd from a FROZEN reference (the first `window` eligible runs, whatever `baseline` says:
  a rolling reference would absorb the very shift the sum accumulates), sd_t floored as
  above at run t's own answered count. S_0 = 0, S_t = max(0, S_{t-1} - z_t - k) over
  every eligible run after the reference (runs made during an alert included: they are
  the shifted runs the statistic is meant to accumulate) up to and including today.
  Breach when S_today > h. Until `window` runs exist, the reference is all of them and
  S is today's single step.
- ewma: Z_0 = 0, Z_t = lambda*z_t + (1-lambda)*Z_{t-1} over the same standardised series;
  breach when Z_today < -L*sqrt(lambda/(2-lambda)), the ASYMPTOTIC limit, the one the
  published ARL tables (Lucas & Saccucci 1990) are computed for, so the stated
  false-alarm rate of a chosen (lambda, L) is the one users get (for known parameters).
- binomial: exact one-sided test (scipy.stats.binomtest, alternative="less") of today's
  passed of answered against the pooled baseline rate sum(passed)/sum(answered), clamped
  into [0.5/N, 1-0.5/N] with N the pooled answered count (a 100% baseline would make any
  failure "impossible"). Breach when p < alpha. The baseline follows `baseline`.

`judge` is what monitor calls: the method's verdict, plus for the rolling baselines (sigma,
sigma_run, binomial) the slow-slide guard of canary/caselevel.py (`slide`): today breaches
too when the recent level is well below the reference taken after the last ack, a drift
the rolling window absorbed.

For every method `Verdict.lower` is the pass rate below which today would have breached
(for cusum and ewma it depends on the statistic's previous value), so a report can draw
one threshold whatever the method. `band` is the two-sided sigma band for real-valued
series (output tokens per sample, p50 latency).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence


METHODS = ("sigma", "sigma_run", "cusum", "ewma", "binomial")
ROLLING = ("sigma", "sigma_run", "binomial")  # methods whose baseline can roll: the slide guard applies
BASELINES = ("rolling", "frozen")


@dataclass(frozen=True)
class RunPoint:
    """One completed run of one (model, suite) series."""

    passed: int  # samples that passed
    answered: int  # passed + failed (errors excluded)
    samples: int  # all samples including errors
    suite_version: str
    in_alert: bool = False  # made while an alert was open for this series
    # per case id: (passed, answered); empty when the caller has only run totals
    cases: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.passed / self.answered if self.answered else None


@dataclass(frozen=True)
class Verdict:
    status: str  # "breach" | "ok" | "no_verdict"
    method: str
    rate: float | None  # today's pass rate passed/answered (band: today's value)
    mean: float | None  # baseline mean
    sd: float | None  # the sd used (after the floor)
    lower: float | None  # today breaches when rate < lower
    baseline_runs: int
    reason: str  # one readable line
    upper: float | None = None  # band only: today breaches when value > upper
    statistic: float | None = None  # sigma z, cusum S, ewma Z, binomial p-value
    slide: object | None = None  # caselevel.Slide: the slow-slide guard's verdict (judge only)
    check: str = "rolling"  # what breached: "rolling" (the method) or "reference" (only the slide guard)

    @property
    def breach(self) -> bool:
        return self.status == "breach"

    def stored(self) -> dict:
        """What is kept with the run it judged (runs.verdict): everything but the slide details."""
        return {k: getattr(self, k) for k in STORED}

    @classmethod
    def from_stored(cls, data: Mapping) -> "Verdict":
        try:
            return cls(**data)  # what `stored` wrote (a report reads a year of them)
        except TypeError:  # a key this version does not keep
            return cls(**{k: data[k] for k in STORED if k in data})


STORED = ("status", "method", "rate", "mean", "sd", "lower", "baseline_runs", "reason", "upper", "statistic", "check")


@dataclass(frozen=True)
class DetectionParams:
    method: str = "sigma"  # sigma | sigma_run | cusum | ewma | binomial
    sigma: float = 2.0
    window: int = 14
    min_history: int = 5
    baseline: str = "rolling"  # rolling | frozen (sigma and binomial)
    min_answered_share: float = 0.5
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    ewma_lambda: float = 0.2
    ewma_L: float = 2.962
    alpha: float = 0.01  # binomial test
    slide: bool = True  # the slow-slide guard (rolling baselines only)
    slide_runs: int = 3  # the recent level pools at least this many runs...
    slide_samples: int = 150  # ...and at least this many answered samples

    def __post_init__(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.baseline not in BASELINES:
            problems.append(f"baseline must be rolling or frozen, not {self.baseline!r}")
        if not 1 <= self.min_history <= self.window:
            problems.append("need 1 <= min_history <= window")
        if self.slide_runs < 1 or self.slide_samples < 0:
            problems.append("slide_runs must be >= 1, slide_samples >= 0")
        if self.sigma <= 0 or self.cusum_h <= 0 or self.cusum_k < 0 or self.ewma_L <= 0:
            problems.append("sigma, cusum_h and ewma_L must be > 0, cusum_k >= 0")
        if not 0 < self.ewma_lambda <= 1 or not 0 < self.alpha < 1:
            problems.append("ewma_lambda must be in (0, 1], alpha in (0, 1)")
        if not 0 <= self.min_answered_share <= 1:
            problems.append("min_answered_share must be in [0, 1]")
        if problems:
            raise ValueError("; ".join(problems))


def params_of(cfg) -> DetectionParams:
    """The detector's parameters from the config's `detection` section (config.Detection)."""
    return DetectionParams(
        method=cfg.method, sigma=cfg.sigma, window=cfg.window, min_history=cfg.min_history,
        baseline=cfg.baseline, min_answered_share=cfg.min_answered_share, cusum_k=cfg.cusum_k,
        cusum_h=cfg.cusum_h, ewma_lambda=cfg.ewma_lambda, ewma_L=cfg.ewma_L, alpha=cfg.alpha, slide=cfg.slide,
        slide_runs=cfg.slide_runs, slide_samples=cfg.slide_samples)


def pool(*runs: RunPoint) -> RunPoint:
    """One run made of several (a breach and its confirmation run): counts are summed."""
    versions = {r.suite_version for r in runs}
    if len(versions) != 1:
        raise ValueError(f"cannot pool runs of different suite versions: {sorted(versions)}")
    return RunPoint(
        passed=sum(r.passed for r in runs),
        answered=sum(r.answered for r in runs),
        samples=sum(r.samples for r in runs),
        suite_version=versions.pop(),
        in_alert=any(r.in_alert for r in runs),
        cases=pool_cases(r.cases for r in runs),
    )


def pool_cases(per_run: Iterable[Mapping[str, tuple[int, int]]]) -> dict[str, tuple[int, int]]:
    pooled: dict[str, tuple[int, int]] = {}
    for cases in per_run:
        for case, (passed, answered) in cases.items():
            p, a = pooled.get(case, (0, 0))
            pooled[case] = (p + passed, a + answered)
    return pooled


def answered_enough(run: RunPoint, min_answered_share: float) -> bool:
    return run.answered > 0 and run.answered >= min_answered_share * run.samples


def same_series(history: Sequence[RunPoint], today: RunPoint, share: float):
    """(index, run) of the history runs of today's suite version answered enough."""
    return [
        (i, r)
        for i, r in enumerate(history)
        if r.suite_version == today.suite_version and answered_enough(r, share)
    ]


def frozen(params: DetectionParams) -> bool:
    """Whether the baseline is the first `window` eligible runs (else the last `window`)."""
    return params.baseline == "frozen" or params.method in ("cusum", "ewma")


def baseline(
    history: Sequence[RunPoint], today: RunPoint, params: DetectionParams
) -> list[RunPoint]:
    """The runs the verdict is based on (for cusum and ewma: the frozen reference)."""
    runs = [r for _, r in same_series(history, today, params.min_answered_share) if not r.in_alert]
    return runs[: params.window] if frozen(params) else runs[-params.window :]


def context(history: Sequence[RunPoint], today: RunPoint, params: DetectionParams,
            same: Sequence[int] | None = None) -> tuple[list[int], bool]:
    """The runs of `history` that today's `judge` reads, as indexes (oldest first), and whether
    every part of it was found before the start of `history`.

    The parts: the reference (the first `window` eligible runs not in an alert; also the frozen
    baseline), the rolling baseline (the last `window` of them), the slide guard's recent runs
    (eligible runs after the reference, newest first, up to `slide_runs` runs and
    `slide_samples` answered samples) and the last `window` eligible runs answered in full
    (the drift bands monitor judges beside quality). judge(history at those indexes, today) is
    judge(history, today); a caller that read only the two ends of a long series reads more
    while the second value is False. cusum and ewma read every eligible run: all of them.
    `same`: the eligible indexes of today's suite version, when the caller keeps them."""
    share, w = params.min_answered_share, params.window
    if same is None:
        same = [i for i, r in enumerate(history) if r.suite_version == today.suite_version and answered_enough(r, share)]
    if params.method in ("cusum", "ewma"):
        return list(same), True
    reference = []
    for i in same:
        if not history[i].in_alert:
            reference.append(i)
            if len(reference) == w:
                break
    picked = set(reference)
    ref_end = reference[-1] if len(reference) == w else None  # the guard needs a whole reference
    base = clean = 0
    recent_runs, recent_answered = 1, today.answered

    def recent_done(i: int) -> bool:
        return (ref_end is None or i <= ref_end
                or (recent_runs >= params.slide_runs and recent_answered >= params.slide_samples))

    complete = False
    for i in reversed(same):
        r = history[i]
        if base < w and not r.in_alert:
            base += 1
            picked.add(i)
        if clean < w and r.samples == r.answered:
            clean += 1
            picked.add(i)
        if not recent_done(i):
            recent_runs += 1
            recent_answered += r.answered
            picked.add(i)
        if base >= w and clean >= w and recent_done(i):
            complete = True
            break
    return sorted(picked), complete and len(reference) == w


def sd_floor(p: float, n: int) -> float:
    """Binomial sd of a rate at n samples, p clamped into [0.5/n, 1-0.5/n]."""
    p = min(max(p, 0.5 / n), 1 - 0.5 / n)
    return math.sqrt(p * (1 - p) / n)


def cusum_path(z: Sequence[float], k: float, s0: float = 0.0) -> list[float]:
    """Lower tabular CUSUM S_t = max(0, S_{t-1} - z_t - k) of one series (plain floats: no numpy)."""
    s, path = float(s0), []
    for v in z:
        s = max(0.0, s - v - k)
        path.append(s)
    return path


def ewma_path(z: Sequence[float], lam: float, z0: float = 0.0) -> list[float]:
    """Z_t = lam*z_t + (1-lam)*Z_{t-1} of one series (plain floats: no numpy)."""
    s, path = float(z0), []
    for v in z:
        s = lam * v + (1 - lam) * s
        path.append(s)
    return path


def cusum_lower(z, k: float, s0=0.0):
    """`cusum_path` along the last axis of an array of series (the benchmarks' many series at once)."""
    import numpy as np
    z = np.asarray(z, dtype=float)
    if z.ndim == 1:
        return np.array(cusum_path(z.tolist(), k, float(s0)))
    out = np.empty_like(z)
    s = np.broadcast_to(np.asarray(s0, dtype=float), z.shape[:-1]).copy()
    for t in range(z.shape[-1]):
        s = np.maximum(0.0, s - z[..., t] - k)
        out[..., t] = s
    return out


def ewma(z, lam: float, z0=0.0):
    """`ewma_path` along the last axis of an array of series."""
    import numpy as np
    z = np.asarray(z, dtype=float)
    if z.ndim == 1:
        return np.array(ewma_path(z.tolist(), lam, float(z0)))
    out = np.empty_like(z)
    s = np.broadcast_to(np.asarray(z0, dtype=float), z.shape[:-1]).copy()
    for t in range(z.shape[-1]):
        s = lam * z[..., t] + (1 - lam) * s
        out[..., t] = s
    return out


def ewma_limit(lam: float, L: float) -> float:
    """Asymptotic EWMA control limit L*sqrt(lam/(2-lam)) in units of the data's sd."""
    return L * math.sqrt(lam / (2 - lam))


def pct(x: float, other: float | None = None) -> str:
    """x as a percent with one decimal, or two when `other` would print the same."""
    if other is not None and f"{100 * x:.1f}" == f"{100 * other:.1f}" and x != other:
        return f"{100 * x:.2f}%"
    return f"{100 * x:.1f}%"


def num(x: float) -> str:
    return f"{x:.1f}" if round(x, 1) == x else f"{x:g}"


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd (0 for one value), in floats: a year of baselines costs microseconds."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def evaluate(history: Sequence[RunPoint], today: RunPoint, params: DetectionParams) -> Verdict:
    """Today's verdict for one series; see the module docstring for each method."""
    m = params.method
    if not answered_enough(today, params.min_answered_share):
        return Verdict(
            "no_verdict", m, today.rate, None, None, None, 0,
            f"only {today.answered} of {today.samples} samples answered "
            f"(need {params.min_answered_share:.0%}): no quality verdict",
        )
    base = baseline(history, today, params)
    if len(base) < params.min_history:
        return Verdict(
            "no_verdict", m, today.rate, None, None, None, len(base),
            f"{len(base)} baseline runs of suite version {today.suite_version}, "
            f"need {params.min_history}",
        )
    if m == "binomial":
        return _binomial(base, today, params)
    if m == "sigma":
        from .caselevel import case_sigma
        return case_sigma(base, today, params)
    rate, n = today.passed / today.answered, today.answered
    mean, sample_sd = mean_sd([r.passed / r.answered for r in base])
    sd = max(sample_sd, sd_floor(mean, n))
    floor_note = " (binomial floor)" if sd > sample_sd else ""
    counts = f"pass rate {pct(rate)} ({today.passed}/{n})"
    if m == "sigma_run":
        lower = mean - params.sigma * sd
        breach = rate < lower
        reason = (
            f"pass rate {pct(rate, lower)} ({today.passed}/{n}) {'<' if breach else '>='} "
            f"{pct(lower, rate)} = mean {pct(mean)} - "
            f"{num(params.sigma)} x sd {pct(sd)}{floor_note}, {len(base)} runs"
        )
        return Verdict("breach" if breach else "ok", m, rate, mean, sd, lower, len(base), reason)

    # cusum / ewma: standardise every eligible run after the reference, then today.
    series = same_series(history, today, params.min_answered_share)
    last_ref = [i for i, r in series if not r.in_alert][len(base) - 1]
    later = [r for i, r in series if i > last_ref]
    z = [(r.passed / r.answered - mean) / max(sample_sd, sd_floor(mean, r.answered)) for r in later]
    z.append((rate - mean) / sd)
    ref = f"reference mean {pct(mean)}, sd {pct(sd)}{floor_note}, {len(base)} runs"
    if m == "cusum":
        k, h = params.cusum_k, params.cusum_h
        path = cusum_path(z, k)
        prev, stat = (float(path[-2]) if len(path) > 1 else 0.0), float(path[-1])
        lower = mean + sd * (prev - k - h)  # S_today > h  <=>  rate < lower
        breach = stat > h
        reason = (
            f"CUSUM {stat:.2f} {'>' if breach else '<='} h {num(h)} after {len(z)} runs; "
            f"{counts}, breach below {pct(lower)}; {ref}"
        )
    else:
        lam, limit = params.ewma_lambda, ewma_limit(params.ewma_lambda, params.ewma_L)
        path = ewma_path(z, lam)
        prev, stat = (float(path[-2]) if len(path) > 1 else 0.0), float(path[-1])
        lower = mean + sd * (-limit - (1 - lam) * prev) / lam  # Z_today < -limit <=> rate < lower
        breach = stat < -limit
        reason = (
            f"EWMA {stat:.2f} {'<' if breach else '>='} -{limit:.2f} = -{num(params.ewma_L)} x "
            f"{limit / params.ewma_L:.3f} after {len(z)} runs; {counts}, breach below "
            f"{pct(lower)}; {ref}"
        )
    status = "breach" if breach else "ok"
    return Verdict(status, m, rate, mean, sd, lower, len(base), reason, statistic=stat)


def judge(history: Sequence[RunPoint], today: RunPoint, params: DetectionParams) -> Verdict:
    """The quality verdict monitor acts on: `evaluate`, and for the rolling baselines the
    slow-slide guard (canary/caselevel.py `slide`); today breaches when either does."""
    v = evaluate(history, today, params)
    if v.status == "no_verdict" or not params.slide or params.method not in ROLLING or params.baseline != "rolling":
        return v
    from .caselevel import slide
    s = slide(history, today, params)
    if s is None:
        return v
    if s.breach and not v.breach:
        reason = f"{s.points:.1f} points below the reference (rolling window absorbed it): {s.reason}"
        return replace(v, status="breach", slide=s, check="reference", reason=reason)
    return replace(v, slide=s)


def _binomial(base: list[RunPoint], today: RunPoint, params: DetectionParams) -> Verdict:
    passed, n_pool = sum(r.passed for r in base), sum(r.answered for r in base)
    mean = passed / n_pool
    p = min(max(mean, 0.5 / n_pool), 1 - 0.5 / n_pool)
    n = today.answered
    import numpy as np
    from scipy import stats  # imported here: scipy.stats costs ~80 MB of RSS, only this method needs it

    pvalue = float(stats.binomtest(today.passed, n, p, alternative="less").pvalue)
    # Largest k with P(X <= k) < alpha: today breaches iff passed <= k, i.e. rate < (k+1)/n.
    cdf = stats.binom.cdf(np.arange(n + 1), n, p)
    k_crit = int(np.count_nonzero(cdf < params.alpha)) - 1
    lower = (k_crit + 1) / n
    breach = pvalue < params.alpha
    reason = (
        f"pass rate {pct(today.passed / n)} ({today.passed}/{n}): one-sided binomial p = "
        f"{pvalue:.2g} {'<' if breach else '>='} alpha {params.alpha:g} against the pooled "
        f"baseline rate {pct(mean)} ({passed}/{n_pool}), {len(base)} runs"
    )
    return Verdict(
        "breach" if breach else "ok", "binomial", today.passed / n, mean,
        math.sqrt(p * (1 - p) / n), lower, len(base), reason, statistic=pvalue,
    )


def band(
    values: Sequence[float | None],
    today: float | None,
    sigma: float,
    window: int,
    min_history: int,
    *,
    rel_floor: float = 0.01,
) -> Verdict:
    """Two-sided sigma band on a real-valued series (tokens per sample, p50 latency).

    Baseline = the last `window` finite values of `values` (oldest first, today excluded;
    None and NaN are skipped, never imputed). Breach when today < mean - sigma*sd or
    today > mean + sigma*sd, sd the sample sd (ddof=1) floored at rel_floor*|mean| so a
    perfectly flat series does not alert on a 0.1% wiggle.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)][-window:]
    if today is None or not math.isfinite(today):
        return Verdict("no_verdict", "band", None, None, None, None, len(finite), "no value today")
    if len(finite) < min_history:
        return Verdict(
            "no_verdict", "band", today, None, None, None, len(finite),
            f"{len(finite)} baseline values, need {min_history}",
        )
    mean, sample_sd = mean_sd(finite)
    sd = max(sample_sd, rel_floor * abs(mean))
    lower, upper = mean - sigma * sd, mean + sigma * sd
    breach = today < lower or today > upper
    reason = (
        f"{today:.4g} {'outside' if breach else 'inside'} [{lower:.4g}, {upper:.4g}] = mean "
        f"{mean:.4g} +- {num(sigma)} x sd {sd:.4g}, {len(finite)} values"
    )
    status = "breach" if breach else "ok"
    return Verdict(status, "band", today, mean, sd, lower, len(finite), reason, upper=upper)
