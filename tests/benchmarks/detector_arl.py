"""Calibration of canary's detectors (run by hand, not collected by pytest).

    python tests/benchmarks/detector_arl.py [--reps 20000] [--years 240] [--trials 1000] [--seed 1]

1. Average run lengths (runs to the first alarm, zero state) of the CUSUM (k=0.5, h=4 and
   h=5) and EWMA (lambda=0.1, L=2.814; lambda=0.2, L=2.962) charts on N(0,1) data, in
   control and after mean drops of 0.5 to 3 sd. Monte Carlo (vectorised over replications,
   stepping with canary.detect.cusum_lower / canary.detect.ewma, the recursions the
   detectors use) beside the published two-sided values (Montgomery, Introduction to
   Statistical Quality Control, tables of the tabular CUSUM after Hawkins 1993 and of the
   EWMA after Lucas & Saccucci 1990) and beside a Markov-chain computation (Brook & Evans
   1972; two-sided CUSUM by 1/ARL = 1/ARL+ + 1/ARL-) that checks those published numbers.
   The published tables are two-sided, so the MC/published ratio compares the simulated
   two-sided chart; canary alarms on drops only, and its one-sided ARLs are printed too.
2. The default detector (case-level sigma 2 with confirmation and the slow-slide guard) on
   four populations: a 21-case x 3-sample suite whose case pass rates are mixed (70% ~always
   pass, 20% flaky, 10% hard), the same mixture at 52 x 3 and 15 x 1, and iid p=.9 at 30
   samples a day: false alarms per series-year (and per team of 15 series), what the slide
   guard adds, "3 reliable cases break" and "-10 points" caught within 3 runs, and slides
   reaching -10 and -20 points over 1 to 112 runs. Every figure with its Monte Carlo size and
   standard error, computed by the shipped code (canary.power over canary.episode.Walk, the
   functions monitor.py calls), then checked against the targets of issue 13.
3. Every method at its defaults on the 21 x 3 mixture.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
import pathlib
import sys
import time

import numpy as np
from scipy import stats

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from canary import power  # noqa: E402
from canary.detect import DetectionParams, cusum_lower, ewma, ewma_limit  # noqa: E402

DROPS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
# Published two-sided zero-state ARLs at the drops above.
CHARTS = [
    ("CUSUM k=0.5 h=4", "cusum", dict(k=0.5, h=4.0), (168, 26.6, 8.38, 4.75, 3.34, 2.19)),
    ("CUSUM k=0.5 h=5", "cusum", dict(k=0.5, h=5.0), (465, 38.0, 10.4, 5.75, 4.01, 2.57)),
    ("EWMA l=0.1 L=2.814", "ewma", dict(lam=0.1, L=2.814), (500, 31.3, 10.3, 6.1, 4.4, 2.9)),
    ("EWMA l=0.2 L=2.962", "ewma", dict(lam=0.2, L=2.962), (500, 41.8, 10.5, 5.5, 3.7, 2.4)),
]


# ---------------------------------------------------------------- Markov chains
def markov_cusum_upper(k: float, h: float, mu: float, m: int = 600) -> float:
    """ARL of S = max(0, S + x - k), alarm S > h, x ~ N(mu, 1) (Brook & Evans)."""
    w = 2 * h / (2 * m - 1)
    c = np.arange(m) * w
    edges = (np.arange(m) + 0.5) * w  # upper edges of the states; state 0 is [0, w/2)
    cdf = stats.norm.cdf(edges[None, :] - c[:, None] + k - mu)
    P = np.diff(np.concatenate([np.zeros((m, 1)), cdf], axis=1), axis=1)
    return float(np.linalg.solve(np.eye(m) - P, np.ones(m))[0])


def markov_cusum(k: float, h: float, drop: float, two_sided: bool) -> float:
    lower = markov_cusum_upper(k, h, drop)  # a drop of the data is a rise of -z
    if not two_sided:
        return lower
    return 1 / (1 / lower + 1 / markov_cusum_upper(k, h, -drop))


def markov_ewma(lam: float, L: float, drop: float, two_sided: bool, m: int = 601) -> float:
    """ARL of the EWMA with asymptotic limits, x ~ N(-drop, 1), started at 0 (Lucas & Saccucci).

    One-sided (alarm below -c only): the open top is truncated at +8 stationary sd."""
    c = ewma_limit(lam, L)
    top = c if two_sided else 8 * c / L
    edges = np.linspace(-c, top, m + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    x = (edges[None, :] - (1 - lam) * mid[:, None]) / lam + drop
    cdf = stats.norm.cdf(x)
    if not two_sided:
        cdf[:, -1] = 1.0  # the top state holds everything above it
    P = np.diff(cdf, axis=1)
    arl = np.linalg.solve(np.eye(m) - P, np.ones(m))
    return float(np.interp(0.0, mid, arl))


# ---------------------------------------------------------------- Monte Carlo
def run_lengths(kind: str, cfg: dict, drop: float, two_sided: bool, reps: int,
                rng: np.random.Generator, chunk: int) -> np.ndarray:
    """Runs to the first alarm of `reps` independent charts, stepped `chunk` runs at a time."""
    rl = np.zeros(reps, dtype=np.int64)
    alive = np.arange(reps)
    low = np.zeros(reps)  # lower CUSUM or EWMA state
    up = np.zeros(reps)  # upper CUSUM state
    t0 = 0
    while alive.size:
        z = rng.standard_normal((alive.size, chunk)) - drop
        if kind == "cusum":
            lo_path = cusum_lower(z, cfg["k"], low)
            alarm = lo_path > cfg["h"]
            if two_sided:
                up_path = cusum_lower(-z, cfg["k"], up)
                alarm |= up_path > cfg["h"]
                up = up_path[:, -1]
        else:
            lo_path = ewma(z, cfg["lam"], low)
            c = ewma_limit(cfg["lam"], cfg["L"])
            alarm = (np.abs(lo_path) > c) if two_sided else (lo_path < -c)
        low = lo_path[:, -1]
        hit = alarm.any(axis=1)
        rl[alive[hit]] = t0 + alarm[hit].argmax(axis=1) + 1
        alive, low, up = alive[~hit], low[~hit], up[~hit] if two_sided else up
        t0 += chunk
    return rl


def arl_table(reps: int, rng: np.random.Generator) -> None:
    print("| chart | drop (sd) | published 2-sided | Markov 2-sided | MC 2-sided | MC/published "
          "| Markov 1-sided | MC 1-sided (canary) |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for name, kind, cfg, published in CHARTS:
        for drop, pub in zip(DROPS, published):
            row = {}
            for two in (True, False):
                if kind == "cusum":
                    mk = markov_cusum(cfg["k"], cfg["h"], drop, two)
                else:
                    mk = markov_ewma(cfg["lam"], cfg["L"], drop, two)
                chunk = int(min(512, max(8, math.ceil(mk))))
                row[two] = (mk, run_lengths(kind, cfg, drop, two, reps, rng, chunk).mean())
            ratio = row[True][1] / pub
            worst = max(worst, abs(ratio - 1))
            print(f"| {name} | {drop:g} | {pub:g} | {row[True][0]:.3g} | {row[True][1]:.3g} | "
                  f"{ratio:.3f} | {row[False][0]:.3g} | {row[False][1]:.3g} |")
    print(f"\nlargest |MC/published - 1| = {100 * worst:.1f}% ({reps} replications a cell; "
          f"target 5%)")
    check = markov_ewma(0.25, 3.0, 1.0, True)
    print(f"Markov self-check: EWMA l=0.25 L=3 drop 1 -> {check:.3f} "
          f"(Crowder 1987, SAS EWMAARL(1, 0.25, 3) = 11.154)")


# ---------------------------------------------------------------- pass-rate series
# Everything below runs the shipped code: canary.power.Simulator walks each simulated series
# day by day through canary.episode.Walk, so through canary.detect.judge (the case-level sigma
# rule and the slow-slide guard) and the episode logic monitor.py uses (confirmation runs,
# one alert per episode, runs in an alert kept out of baselines). Only the model is drawn.

@dataclass
class Population:
    name: str
    cases: int
    repeat: int
    rates: object  # rng -> per-case pass rates of one series

    def draw(self, rng):
        return lambda: self.rates(rng)


POPULATIONS = [
    Population("21 cases x 3 samples, mixture", 21, 3, lambda rng: power.mixture_rates(21, rng)),
    Population("52 cases x 3 samples, mixture", 52, 3, lambda rng: power.mixture_rates(52, rng)),
    Population("15 cases x 1 sample, mixture", 15, 1, lambda rng: power.mixture_rates(15, rng)),
    Population("iid p=.9, 10 cases x 3 samples (n=30)", 10, 3, lambda rng: [0.9] * 10),
]
TEAM = 15
RAMPS = (1, 7, 14, 28, 56, 112)  # runs over which a slide reaches its full drop


def false_alarm_rate(params: DetectionParams, pop: Population, years: int, rng, confirm: bool = True):
    sim = power.Simulator(params, confirm, pop.repeat, rng)
    opened, days = sim.false_alarms(pop.draw(rng), years)
    per_year = opened / days * power.YEAR
    return per_year, math.sqrt(opened) / (days / power.YEAR), opened


def caught_share(params: DetectionParams, pop: Population, degrade, trials: int, rng) -> tuple[float, float]:
    sim = power.Simulator(params, True, pop.repeat, rng)
    draw = pop.draw(rng)

    def pair():
        rates = draw()
        return rates, degrade(rates)
    share = sim.caught_within(pair, trials) / trials
    return share, math.sqrt(share * (1 - share) / trials)


def slide_table(params: DetectionParams, pop: Population, points: float, trials: int, rng) -> list[tuple]:
    """Per ramp: p50, p90 of runs from reaching the full drop to an open alert, share within 14."""
    sim = power.Simulator(params, True, pop.repeat, rng)
    rows = []
    for ramp in RAMPS:
        d = np.array(sim.slide_delays(pop.draw(rng), points, ramp, trials))
        within = float(np.mean(d <= 14))
        rows.append((ramp, float(np.median(d)), float(np.percentile(d, 90)), within,
                     math.sqrt(within * (1 - within) / trials)))
    return rows


def fmt_runs(x: float, cap: int = 60) -> str:
    return f">{cap}" if x > cap else f"{x:g}"


def population_section(years: int, trials: int, slide_trials: int, rng) -> list[str]:
    """The default detector on each population; returns the target verdicts of the first."""
    params, no_slide = DetectionParams(), DetectionParams(slide=False)
    print(f"\n## Default detection (case-level sigma 2, confirmation, slow-slide guard) on four populations")
    print(f"Mixture: 70% of cases pass at .99, 20% flaky (uniform .6-.95), 10% hard (uniform .05-.4), drawn "
          f"per series. False alarms: {years} series-years per cell (after {params.window} runs of history), "
          f"standard error sqrt(alarms)/years. Caught: {trials} trials per cell, standard error "
          f"sqrt(p(1-p)/trials); a break is 3 reliable cases falling to pass rate {power.BROKEN}; -10 points "
          f"is every case's failure odds up by one factor.")
    print("| population | false alarms / series-year | per team of 15 / year | of which the slide guard adds | "
          "3 reliable cases break: caught within 3 runs | -10 points: caught within 3 runs | "
          f"slow slide to -10 (worst ramp of {RAMPS}): p90 runs after reaching it |")
    print("|---|---|---|---|---|---|---|")
    verdicts = []
    for i, pop in enumerate(POPULATIONS):
        fa, fa_se, n = false_alarm_rate(params, pop, years, rng)
        fa0, fa0_se, _ = false_alarm_rate(no_slide, pop, years, rng)
        br, br_se = caught_share(params, pop, power.break_cases, trials, rng)
        dr, dr_se = caught_share(params, pop, lambda r: power.odds_drop(r, 10), trials, rng)
        slides = slide_table(params, pop, 10, slide_trials, rng)
        worst = max(slides, key=lambda row: row[2])
        print(f"| {pop.name} | {fa:.3f} ± {fa_se:.3f} ({n} alarms) | {TEAM * fa:.1f} | {fa - fa0:+.3f} "
              f"(without it {fa0:.3f} ± {fa0_se:.3f}) | {100 * br:.1f}% ± {100 * br_se:.1f} | "
              f"{100 * dr:.1f}% ± {100 * dr_se:.1f} | {fmt_runs(worst[2])} (ramp {worst[0]}; "
              f"{100 * worst[3]:.0f}% within 14) |")
        if i == 0:
            verdicts = [
                ("false alarms <= 0.15 / series-year", fa <= 0.15, f"{fa:.3f} ± {fa_se:.3f}"),
                ("slide guard adds <= 0.05", fa - fa0 <= 0.05, f"{fa - fa0:+.3f} (± {math.hypot(fa_se, fa0_se):.3f})"),
                ("3 reliable cases break: >= 95% within 3 runs", br >= 0.95, f"{100 * br:.1f}% ± {100 * br_se:.1f}"),
                ("-10 points: >= 95% within 3 runs", dr >= 0.95, f"{100 * dr:.1f}% ± {100 * dr_se:.1f}"),
            ]
            first_slides = slides
    pop = POPULATIONS[0]
    print(f"\n### Slow slides on the {pop.name} ({slide_trials} trials a ramp)")
    print("Runs from the day the slide reaches its full drop until an alert is open (0: already open then).")
    print("| drop | reached over (runs) | median | 90th percentile | caught within 14 runs |")
    print("|---|---|---|---|---|")
    worst90 = 0.0
    for points in (10, 20):
        rows = first_slides if points == 10 else slide_table(params, pop, points, slide_trials, rng)
        for ramp, p50, p90, within, se in rows:
            worst90 = max(worst90, p90)
            print(f"| -{points} points | {ramp} | {fmt_runs(p50)} | {fmt_runs(p90)} | "
                  f"{100 * within:.1f}% ± {100 * se:.1f} |")
    verdicts.append(("sustained drops >= 10 points caught within 14 runs (p90)", worst90 <= 14,
                     f"worst p90 {fmt_runs(worst90)} runs"))
    return verdicts


def methods_section(years: int, trials: int, rng) -> None:
    pop = POPULATIONS[0]
    print(f"\n## Every method at its defaults, with confirmation, on the {pop.name} "
          f"({years} series-years, {trials} trials)")
    print("| method | false alarms / series-year | per team of 15 | -10 points: caught within 3 runs |")
    print("|---|---|---|---|")
    for method in ("sigma", "sigma_run", "cusum", "ewma", "binomial"):
        params = DetectionParams(method=method)
        fa, fa_se, _ = false_alarm_rate(params, pop, years, rng)
        dr, dr_se = caught_share(params, pop, lambda r: power.odds_drop(r, 10), trials, rng)
        print(f"| {method} | {fa:.3f} ± {fa_se:.3f} | {TEAM * fa:.1f} | {100 * dr:.1f}% ± {100 * dr_se:.1f} |")
    fa, fa_se, _ = false_alarm_rate(DetectionParams(), pop, years, rng, confirm=False)
    print(f"| sigma, literal (`confirm: false`) | {fa:.3f} ± {fa_se:.3f} | {TEAM * fa:.1f} | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20000, help="MC replications per ARL cell")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--years", type=int, default=240, help="series-years per false-alarm cell")
    ap.add_argument("--trials", type=int, default=3000, help="regressions per caught-within-3-runs cell")
    ap.add_argument("--slide-trials", type=int, default=300, help="slides per ramp")
    ap.add_argument("--method-years", type=int, default=120, help="series-years per method in the last table")
    ap.add_argument("--no-arl", action="store_true", help="skip the chart ARL table")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    if not args.no_arl:
        print("## Average run lengths (zero state, N(0,1) data, drop = mean shift down in sd)")
        arl_table(args.reps, rng)
    verdicts = population_section(args.years, args.trials, args.slide_trials, rng)
    methods_section(args.method_years, args.trials // 2, rng)
    print(f"\n## Targets (issue 13) on the {POPULATIONS[0].name}")
    for name, met, figure in verdicts:
        print(f"- {'met' if met else 'MISSED'}: {name}: {figure}")
    print(f"\n({time.perf_counter() - start:.0f} s, seed {args.seed})")


if __name__ == "__main__":
    main()
