"""What a detector catches and how often it cries wolf, by simulation of the shipped code.

Every simulated day goes through `episode.Walk`, so through `detect.judge` (the case-level
sigma rule and the slow-slide guard) and the episode logic monitor.py uses: confirmation
runs, one alert per episode, runs in an alert kept out of baselines. Only the model is
simulated: each case passes each sample with its own probability.

Used by `canary calibrate` (the power table), by monitor (the smallest drop `canary status`
shows, cached per suite version) and by tests/benchmarks/detector_arl.py. numpy is
imported inside the functions that draw numbers.

Scenarios, each starting after `window + slide_runs` healthy runs (a full baseline and a
full slide reference):
- `break_cases`: k of the reliable cases (pass rate >= 0.9) break: they pass at 0.2.
- `odds_drop`: every case's failure odds rise by one factor, chosen so the mean pass rate
  drops by the given points (a model that is worse at everything).
- a slide (`slide_delays`): the same odds drop reached linearly over `ramp` runs, then held.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from . import caselevel
from .detect import DetectionParams, RunPoint
from .episode import Walk

YEAR = 365
BROKEN = 0.2  # the pass rate of a broken case
MIXTURE = ((0.7, 0.99, 0.99), (0.2, 0.6, 0.95), (0.1, 0.05, 0.4))  # (share, low, high) of case rates


def mixture_rates(n_cases: int, rng) -> list[float]:
    """A realistic suite: 70% of cases pass at .99, 20% are flaky (uniform .6-.95), 10% hard
    (uniform .05-.4); shares rounded to whole cases, the rest reliable."""
    flaky, hard = round(0.2 * n_cases), round(0.1 * n_cases)
    reliable = n_cases - flaky - hard
    return [0.99] * reliable + list(rng.uniform(0.6, 0.95, flaky)) + list(rng.uniform(0.05, 0.4, hard))


def posterior_rates(counts: Sequence[tuple[int, int]], rng) -> list[float]:
    """True rates drawn from what was measured: Beta(passed+1/2, failed+1/2) per case (Jeffreys),
    so a case measured 10/10 is simulated as very reliable, not as never failing."""
    return [float(rng.beta(p + 0.5, n - p + 0.5)) for p, n in counts]


def shifted(rates: Sequence[float], log_odds: float) -> list[float]:
    """Every case's failure odds multiplied by exp(log_odds)."""
    out = []
    for p in rates:
        p = min(max(p, 1e-9), 1 - 1e-9)
        out.append(1 / (1 + math.exp(-(math.log(p / (1 - p)) - log_odds))))
    return out


def odds_shift(rates: Sequence[float], points: float) -> float:
    """The log failure-odds factor that drops the mean pass rate by `points` (or as far as it can)."""
    target = sum(rates) / len(rates) - points / 100
    lo, hi = 0.0, 40.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(shifted(rates, mid)) / len(rates) > target:
            lo = mid
        else:
            hi = mid
    return hi


def odds_drop(rates: Sequence[float], points: float) -> list[float]:
    """Every case's failure odds up by one factor: the mean pass rate drops by `points`."""
    return shifted(rates, odds_shift(rates, points))


def break_cases(rates: Sequence[float], k: int = 3) -> list[float]:
    """The k most reliable cases (pass rate >= 0.9) break: they pass at BROKEN."""
    reliable = sorted((i for i, p in enumerate(rates) if p >= 0.9), key=lambda i: -rates[i])[:k]
    return [BROKEN if i in reliable else p for i, p in enumerate(rates)]


@dataclass
class Simulator:
    """Simulated runs of one suite (case i passes with rates[i]) through the shipped detector."""

    params: DetectionParams
    confirm: bool
    repeat: int
    rng: object  # numpy.random.Generator

    def run(self, rates: Sequence[float]) -> RunPoint:
        passed = self.rng.binomial(self.repeat, rates)
        cases = {f"c{i}": (int(k), self.repeat) for i, k in enumerate(passed)}
        total = int(passed.sum())
        n = self.repeat * len(rates)
        return RunPoint(total, n, n, "v", cases=cases)

    def walk(self, rates: Sequence[float], runs: int) -> Walk:
        """A series after `runs` healthy runs (its baseline; no alert open), to be judged from now on."""
        return Walk(self.params, self.confirm, history=[self.run(rates) for _ in range(runs)])

    @property
    def warm_up(self) -> int:
        return self.params.window + self.params.slide_runs

    def false_alarms(self, rates_of: Callable[[], Sequence[float]], series: int, days: int = YEAR) -> tuple[int, int]:
        """(alerts opened, days counted) over `series` healthy series of `days` judged runs each,
        after `window` runs of history."""
        opened = 0
        for _ in range(series):
            rates = rates_of()
            walk = self.walk(rates, self.params.window)
            for _ in range(days):
                opened += walk.day(self.run(rates), lambda: self.run(rates)) == "open"
        return opened, series * days

    def caught_within(self, rates_of: Callable[[], tuple[Sequence[float], Sequence[float]]], trials: int,
                      runs: int = 3) -> int:
        """Trials (of `trials`) in which a change from healthy to degraded rates has an alert
        open within `runs` scheduled runs."""
        caught = 0
        for _ in range(trials):
            before, after = rates_of()
            walk = self.walk(before, self.warm_up)
            for _ in range(runs):
                walk.day(self.run(after), lambda: self.run(after))
                if walk.alert_open:
                    caught += 1
                    break
        return caught

    def slide_delays(self, rates_of: Callable[[], Sequence[float]], points: float, ramp: int, trials: int,
                     cap: int = 60) -> list[int]:
        """Runs from the day a slide reaches `points` below the start (linearly over `ramp`
        runs, then held) until an alert is open (0: already open then); cap + 1 = not caught."""
        delays = []
        for _ in range(trials):
            rates = rates_of()
            walk = self.walk(rates, self.warm_up)
            shift = odds_shift(rates, points)
            delay = cap + 1
            for t in range(1, ramp + cap + 1):
                now = shifted(rates, shift * min(1.0, t / ramp))
                walk.day(self.run(now), lambda: self.run(now))
                if walk.alert_open and t >= ramp:
                    delay = t - ramp
                    break
            delays.append(delay)
        return delays


DROPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)  # points, for `smallest_drop`
SHARE = 0.95  # "caught": in at least this share of the trials
TRIALS = 200  # trials per drop level of `smallest_drop`


def settings_key(params: DetectionParams, confirm: bool, repeat: int) -> str:
    """What a simulated figure depends on besides the cases: the detection settings, repeat and
    the case-level prior (a release that changes it makes the cached figures stale)."""
    p = params
    slide = (f"slide {p.slide_runs}/{p.slide_samples}" if p.slide else "no slide")
    return (f"{p.method} sigma {p.sigma:g} window {p.window} min_history {p.min_history} {p.baseline} "
            f"share {p.min_answered_share:g} cusum {p.cusum_k:g}/{p.cusum_h:g} ewma {p.ewma_lambda:g}/{p.ewma_L:g} "
            f"alpha {p.alpha:g} {slide} confirm {confirm} repeat {repeat} prior {caselevel.PRIOR:g}")


def smallest_drop(counts: Sequence[tuple[int, int]], params: DetectionParams, confirm: bool, repeat: int, *,
                  trials: int = TRIALS, seed: int = 0, runs: int = 3) -> float | None:
    """The smallest drop in DROPS (every case's failure odds up) caught within `runs` runs in
    SHARE of the trials, the true case rates drawn from the measured (passed, answered) counts;
    None if not even the largest possible one is. Each level is simulated with the same seed."""
    mean = sum((p + 0.5) / (n + 1) for p, n in counts) / len(counts)
    drops = [d for d in DROPS if d < 100 * mean]

    def caught(points: float) -> bool:
        r = rng(seed)
        sim = Simulator(params, confirm, repeat, r)

        def rates_of():
            rates = posterior_rates(counts, r)
            return rates, odds_drop(rates, points)
        return sim.caught_within(rates_of, trials, runs) >= SHARE * trials

    lo, hi = 0, len(drops)  # the answer's index is in [lo, hi]; hi = none caught
    while lo < hi:
        mid = (lo + hi) // 2
        if caught(drops[mid]):
            hi = mid
        else:
            lo = mid + 1
    return float(drops[lo]) if lo < len(drops) else None


def rng(seed: int | None = None):
    import numpy as np
    return np.random.default_rng(seed)
