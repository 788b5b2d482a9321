"""`canary calibrate`: what watching a model on a suite can catch, at what false-alarm rate and cost.

Each case's pass rate is measured, by running every case `samples` times (runs of kind
`calibrate`, which never enter a baseline) or from the stored history (`stored`). Cases
that carry no signal are marked: one that always passes catches only a total break, one
that always fails catches nothing, a flaky one mostly adds noise. Then, for 1, 3 and 5
samples per case, canary/power.py simulates the shipped detector and episode logic on
those rates: false alarms per series-year (and per team of 15 series), the share of "3 of
the reliable cases break" and of "-10 points" caught within 3 runs, and the cost per day
from the measured tokens and the model's `price`. The recommended `repeat` is the
smallest that meets the targets (at most 0.15 false alarms a series-year, 95% caught), or
when none does the one that comes closest.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime

from . import detect, power
from .config import Config, ModelConfig
from .detect import params_of as detection_params
from .series import points as series
from .store import Store
from .suites import Suite

REPEATS = (1, 3, 5)
TEAM = 15  # series a team watches (5 models x 3 suites)
MAX_FALSE_ALARMS = 0.15  # per series-year
MIN_CAUGHT = 0.95  # within 3 runs


@dataclass
class CaseRate:
    case: str
    passed: int
    answered: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.answered if self.answered else None

    @property
    def note(self) -> str:
        """What the case is worth to the detector."""
        r = self.rate
        if r is None:
            return "never answered (errors): not measured"
        if r == 1:
            return "always passes: catches only a total break"
        if r == 0:
            return "always fails: no signal"
        if 0.1 < r < 0.9:
            return "flaky: mostly noise"
        return ""


@dataclass
class PowerRow:
    repeat: int
    false_alarms: float  # per series-year
    false_alarms_se: float
    team: float  # per team of TEAM series a year
    break_caught: float | None  # share of "3 reliable cases break" caught within 3 runs (None: < 3 reliable)
    drop_caught: float  # share of "-10 points" caught within 3 runs
    caught_se: float  # the larger standard error of the two shares
    cost_per_day: float | None  # USD, one scheduled run a day (None: no price)
    tokens_per_day: int

    @property
    def meets_targets(self) -> bool:
        caught = [c for c in (self.break_caught, self.drop_caught) if c is not None]
        return self.false_alarms <= MAX_FALSE_ALARMS and all(c >= MIN_CAUGHT for c in caught)


@dataclass
class Calibration:
    model: str
    suite: str
    suite_version: str
    source: str  # "calibrate runs (K samples per case)" or "stored history (N runs)"
    cases: list[CaseRate]
    input_tokens: float  # per answered sample
    output_tokens: float
    table: list[PowerRow] = field(default_factory=list)
    recommended: int | None = None
    meets_targets: bool = False  # the recommended repeat meets them (else it only comes closest)
    series_years: int = 0
    trials: int = 0
    min_drop: float | None = None  # at the configured repeat: what `canary status` shows

    def as_dict(self) -> dict:
        out = asdict(self)
        for c, row in zip(out["cases"], self.cases):
            c.update(rate=row.rate, note=row.note)
        return out


def measured(store: Store, run_ids: list[int]) -> list[CaseRate]:
    """Per case, passed of answered over these runs."""
    pooled: dict[str, list[int]] = {}
    for per_case in store.case_counts(run_ids).values():
        for case, n in per_case.items():
            p = pooled.setdefault(case, [0, 0])
            p[0] += n.passed
            p[1] += n.answered
    return [CaseRate(c, p, a) for c, (p, a) in sorted(pooled.items())]


def from_runs(store: Store, model: str, suite: Suite, run_ids: list[int], source: str) -> Calibration:
    rows = [store.run(i) for i in run_ids]
    answered = sum(r.passed + r.failed for r in rows) or 1
    return Calibration(model, suite.name, suite.version, source, measured(store, run_ids),
                       sum(r.input_tokens for r in rows) / answered, sum(r.output_tokens for r in rows) / answered)


def from_history(store: Store, config: Config, model: str, suite: Suite) -> Calibration | None:
    """The stored runs of the current suite version (since the last ack, none made in an alert)."""
    share = config.detection.min_answered_share
    points = [p for p in series(store, model, suite.name) if p.point.suite_version == suite.version
              and not p.point.in_alert and detect.answered_enough(p.point, share)]
    if not points:
        return None
    ids = [i for p in points for i in p.run_ids]
    return from_runs(store, model, suite, ids, f"stored history ({len(points)} runs)")


def simulate(cal: Calibration, config: Config, model: ModelConfig, *, series_years: int = 100, trials: int = 400,
             seed: int = 0) -> Calibration:
    """Fill in the power table, the recommendation and the configured repeat's smallest drop."""
    counts = [(c.passed, c.answered) for c in cal.cases if c.answered]
    if not counts:
        return cal
    params, confirm = detection_params(config.detection), config.detection.confirm
    cal.series_years, cal.trials = series_years, trials
    reliable = sum(1 for p, n in counts if (p + 0.5) / (n + 1) >= 0.9)
    for repeat in REPEATS:
        rng = power.rng(seed)
        sim = power.Simulator(params, confirm, repeat, rng)
        rates_of = lambda: power.posterior_rates(counts, rng)  # noqa: E731
        opened, days = sim.false_alarms(rates_of, series_years)
        years = days / power.YEAR
        breaks = None
        if reliable >= 3:
            breaks = sim.caught_within(lambda: _pair(rates_of(), power.break_cases), trials) / trials
        drops = sim.caught_within(lambda: _pair(rates_of(), lambda r: power.odds_drop(r, 10)), trials) / trials
        worst = min([drops] + ([breaks] if breaks is not None else []))
        samples = repeat * len(counts)
        cal.table.append(PowerRow(
            repeat, opened / years, math.sqrt(opened) / years, TEAM * opened / years, breaks, drops,
            math.sqrt(max(worst * (1 - worst), 1 / trials) / trials),
            model.cost(samples * cal.input_tokens, samples * cal.output_tokens),
            round(samples * (cal.input_tokens + cal.output_tokens))))
    cal.recommended, cal.meets_targets = recommend(cal.table)
    return cal


def recommend(table: list[PowerRow]) -> tuple[int, bool]:
    """The smallest repeat that meets the targets; else, among those within the false-alarm
    target (else all), the one that catches the most."""
    good = [r for r in table if r.meets_targets]
    if good:
        return good[0].repeat, True
    quiet = [r for r in table if r.false_alarms <= MAX_FALSE_ALARMS] or table
    caught = lambda r: min(c for c in (r.break_caught, r.drop_caught) if c is not None)  # noqa: E731
    return max(quiet, key=lambda r: (caught(r), -r.repeat)).repeat, False


def _pair(rates, degrade):
    return rates, degrade(rates)


def cache_min_drop(store: Store, cal: Calibration, config: Config, model: ModelConfig, suite: Suite,
                   now: datetime, seed: int = 0) -> None:
    """Simulate and cache, for `canary status`, the smallest drop caught at the configured repeat."""
    counts = [(c.passed, c.answered) for c in cal.cases if c.answered]
    if not counts:
        return
    params, confirm = detection_params(config.detection), config.detection.confirm
    repeat = model.repeat or suite.repeat
    cal.min_drop = power.smallest_drop(counts, params, confirm, repeat, seed=seed)
    store.save_sensitivity(model=model.name, suite=suite.name, suite_version=suite.version,
                           settings=power.settings_key(params, confirm, repeat), min_drop=cal.min_drop,
                           trials=power.TRIALS, source="calibrate", now=now)
