"""Calibration of canary's detectors (run by hand, not collected by pytest).

    /work/venv/bin/python tests/benchmarks/detector_arl.py [--reps 20000] [--seed 1]

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
2. The default sigma rule on binomial pass rates (p=0.9, 30 samples a day, window 14,
   min_history 5, sd floor), day by day through canary.detect.evaluate: false alarms per
   series per year with and without confirmation, and runs to detect a drop to p=0.75.
3. The same two numbers for each method as configured by default, parameters estimated
   from 14 runs (so the chart ARLs of section 1 do not hold exactly).
"""
from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import numpy as np
from scipy import stats

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from canary.detect import (  # noqa: E402
    DetectionParams,
    RunPoint,
    cusum_lower,
    evaluate,
    ewma,
    ewma_limit,
    pool,
)

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
P0, P1, N, YEAR, TRIM = 0.9, 0.75, 30, 365, 60
# Histories are trimmed to the last TRIM runs for speed (sigma and binomial only): those
# always hold the 14 eligible runs of the rolling baseline. cusum/ewma get the whole series.


def one_day(history: list[RunPoint], passed: int, p: float, params: DetectionParams,
            confirm: bool, rng: np.random.Generator,
            is_open: bool = False) -> tuple[bool, RunPoint]:
    """Today's (confirmed) breach and the point the series keeps: a confirmation run is
    pooled into its day's point (as canary.monitor does) and a point is in_alert when it
    was made while an alert was already open (DESIGN.md; the run that opens an alert is
    not: excluding every breaching day truncates the baseline from below, shrinks its sd
    and raises the literal rule's false alarms from ~13 to ~19 a series-year)."""
    trim = params.method in ("sigma", "binomial")
    base = history[-TRIM:] if trim else history
    point = RunPoint(passed, N, N, "v")
    breach = evaluate(base, point, params).status == "breach"
    if breach and confirm:
        point = pool(point, RunPoint(int(rng.binomial(N, p)), N, N, "v"))
        breach = evaluate(base, point, params).status == "breach"
    return breach, RunPoint(point.passed, point.answered, point.samples, "v", in_alert=is_open)


def false_alarms(params: DetectionParams, confirm: bool, series: int, days: int,
                 rng: np.random.Generator) -> tuple[int, int, int]:
    """(alerts opened, breach days, days counted) over `series` in-control series.

    One alert a spell of consecutive breach days (one message, then "recovered"); the first
    `window` days are warm-up and not counted."""
    opened = breaches = counted = 0
    primary = rng.binomial(N, P0, size=(series, days))
    for s in range(series):
        history: list[RunPoint] = []
        was_open = False
        for d in range(days):
            breach, point = one_day(history, int(primary[s, d]), P0, params, confirm, rng, was_open)
            if d >= params.window:
                counted += 1
                breaches += breach
                opened += breach and not was_open
            was_open = breach
            history.append(point)
    return opened, breaches, counted


def detection_delays(params: DetectionParams, confirm: bool, trials: int,
                     rng: np.random.Generator, cap: int = 60) -> np.ndarray:
    """Scheduled runs from a sustained drop to P1 until the first (confirmed) breach."""
    delays = np.full(trials, cap + 1)
    for i in range(trials):
        history = [RunPoint(int(p), N, N, "v") for p in rng.binomial(N, P0, params.window)]
        for day in range(1, cap + 1):
            breach, point = one_day(history, int(rng.binomial(N, P1)), P1, params, confirm, rng)
            if breach:
                delays[i] = day
                break
            history.append(point)
    return delays


def describe(d: np.ndarray, cap: int = 60) -> str:
    return (f"median {np.median(d):g}, 90th pct {np.percentile(d, 90):g}, on day 1 "
            f"{100 * np.mean(d == 1):.0f}%, not within {cap} {100 * np.mean(d > cap):.1f}%")


def sigma_section(series_days: int, trials: int, rng: np.random.Generator) -> None:
    params = DetectionParams()
    series, days = max(1, series_days // 1000), 1000
    print(f"\n## Default sigma rule on pass rates: p={P0}, n={N} a day, window {params.window}, "
          f"min_history {params.min_history}, sd floor (canary.detect.evaluate; "
          f"{series} series x {days} days)")
    print("| rule | breach days | false alarms / series / year | 15 series / year | "
          f"runs to detect p={P1} ({trials} trials) |")
    print("|---|---|---|---|---|")
    for label, confirm in (("literal (confirm: false)", False), ("with confirmation", True)):
        opened, breaches, counted = false_alarms(params, confirm, series, days, rng)
        per_year = opened / counted * YEAR
        delays = detection_delays(params, confirm, trials, rng)
        print(f"| {label} | 1 in {counted / max(breaches, 1):.1f} | {per_year:.2f} | "
              f"{15 * per_year:.0f} | {describe(delays)} |")


def methods_section(series: int, trials: int, rng: np.random.Generator) -> None:
    print(f"\n## Every method, default parameters, no confirmation, estimated from the data "
          f"(p={P0}, n={N}; {series} series x 1 year after an ack; {trials} trials)")
    print(f"| method | false alarms / series / year | runs to detect p={P1} |")
    print("|---|---|---|")
    for method in ("sigma", "cusum", "ewma", "binomial"):
        params = DetectionParams(method=method)
        opened, _, counted = false_alarms(params, False, series, YEAR, rng)
        delays = detection_delays(params, False, trials, rng)
        print(f"| {method} | {opened / counted * YEAR:.2f} | {describe(delays)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20000, help="MC replications per ARL cell")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--series-days", type=int, default=300_000,
                    help="simulated days of the sigma-rule false-alarm estimate")
    ap.add_argument("--trials", type=int, default=4000, help="drop-detection trials")
    ap.add_argument("--method-series", type=int, default=150,
                    help="one-year series per method in the last table")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print("## Average run lengths (zero state, N(0,1) data, drop = mean shift down in sd)")
    arl_table(args.reps, rng)
    sigma_section(args.series_days, args.trials, rng)
    methods_section(args.method_series, args.trials // 4, rng)
    print(f"\n({time.perf_counter() - start:.0f} s, seed {args.seed})")


if __name__ == "__main__":
    main()
