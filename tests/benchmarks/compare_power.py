"""Calibration of `canary compare`'s verdict by simulation (run by hand, not collected by pytest).

    python tests/benchmarks/compare_power.py [--reps 100000] [--power-reps 4000] [--seed 1]

Each replication draws a suite of k cases (21, 15 and 16: the starter suites' sizes) whose
pass probabilities for model A come from a realistic mixture (60% solid cases, p uniform in
[0.97, 1]; 25% shaky, [0.70, 0.97]; 15% hard, [0.20, 0.70]; a mean near 87%), then r
samples per case of each model, and judges them with canary.compare's own score function
(the verdict `canary compare` prints: better / no_worse / worse / inconclusive).

1. No difference (B's cases = A's): how often the verdict is `worse` (nominal at most
   2.5%, the one-sided error of a 95% interval) and `better`.
2. B exactly 5 points worse than A on this suite (the margin): how often the verdict is
   still `no_worse` or `better` (non-inferiority's error; nominal 2.5%, required <= 5%).
   Two shapes: the loss spread over every case (a logit shift), and concentrated on a fifth
   of the cases (a model that breaks a few prompts).
3. Power: with no difference, how often `no_worse` (or `better`) is reached at 5 points,
   by samples per case (repeat x days of stored runs); the smallest r giving 80%. For the
   mixture above and for a strong model (every case's p uniform in [0.97, 1]).
4. The assumption behind the stratified analysis: a case's samples are independent draws of
   one pass probability. Stored runs pool days; if each model's case rates wobble from day
   to day (independently, normal on the logit scale), the samples of a case are
   over-dispersed. The `worse` rate under no long-run difference, 7 days x repeat 3.

Every rate is printed with its Monte Carlo standard error sqrt(p(1-p)/reps).
"""
from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from canary.compare import score, verdict_of, z_value  # noqa: E402

SUITES = {"reasoning": 21, "instruction_following": 15, "tool_calls": 16}
REPEATS = (1, 3, 5)
POWER_REPEATS = (1, 3, 5, 7, 10, 15, 21, 30, 45, 60)
WOBBLE = (0.0, 0.3, 0.5, 1.0)  # day-to-day sd of each case's logit pass rate
MARGIN = 0.05
MIXTURE = ((0.60, 0.97, 1.00), (0.25, 0.70, 0.97), (0.15, 0.20, 0.70))  # (share, low, high)
STRONG = ((1.0, 0.97, 1.00),)


def case_rates(rng: np.random.Generator, reps: int, k: int, mixture=MIXTURE) -> np.ndarray:
    """(reps, k) pass probabilities of model A, from the mixture."""
    kind = rng.choice(len(mixture), size=(reps, k), p=[m[0] for m in mixture])
    lows = np.array([m[1] for m in mixture])[kind]
    highs = np.array([m[2] for m in mixture])[kind]
    return rng.uniform(lows, highs)


def wobbling_passes(rng: np.random.Generator, pa: np.ndarray, days: int, r: int, sd: float) -> np.ndarray:
    """Passes over `days` runs of r samples, each day's case rates moved by N(0, sd) on the logit scale."""
    logit = np.log(pa) - np.log1p(-np.minimum(pa, 1 - 1e-12))
    total = np.zeros(pa.shape)
    for _ in range(days):
        total += rng.binomial(r, 1 / (1 + np.exp(-(logit + rng.normal(0, sd, pa.shape)))))
    return total


def spread_loss(pa: np.ndarray, loss: float) -> np.ndarray:
    """B's rates: A's shifted on the logit scale so each suite loses exactly `loss` on average."""
    logit = np.log(pa) - np.log1p(-np.minimum(pa, 1 - 1e-12))
    lo, hi = np.zeros(pa.shape[0]), np.full(pa.shape[0], 50.0)
    for _ in range(80):
        mid = (lo + hi) / 2
        drop = (pa - 1 / (1 + np.exp(-(logit - mid[:, None])))).mean(axis=1)
        lo, hi = np.where(drop < loss, mid, lo), np.where(drop < loss, hi, mid)
    return 1 / (1 + np.exp(-(logit - ((lo + hi) / 2)[:, None])))


def concentrated_loss(rng: np.random.Generator, pa: np.ndarray, loss: float, share: float = 0.2) -> np.ndarray:
    """B's rates: the suite's `loss` falls on a random fifth of its cases (none below 0)."""
    reps, k = pa.shape
    pb = pa.copy()
    m = max(1, round(share * k))
    for i in range(reps):
        left = loss * k
        for j in rng.permutation(k):  # the first m cases take an equal share; any shortfall moves on
            take = min(pa[i, j], left / max(1, m))
            pb[i, j] -= take
            left -= take
            m -= 1
            if left <= 1e-12:
                break
        m = max(1, round(share * k))
    return pb


def verdicts(rng: np.random.Generator, pa: np.ndarray, pb: np.ndarray, r: int) -> np.ndarray:
    n = np.full(pa.shape, float(r))
    xa, xb = rng.binomial(r, pa).astype(float), rng.binomial(r, pb).astype(float)
    z = z_value()
    z0 = score(xa, n, xb, n, 0.0)[0]
    zm = score(xa, n, xb, n, -MARGIN)[0]
    return np.array([verdict_of(a, b, z) for a, b in zip(z0, zm)])


def rate(mask: np.ndarray) -> str:
    p = mask.mean()
    return f"{100 * p:5.2f}% ± {100 * math.sqrt(p * (1 - p) / mask.size):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=100000, help="replications per error-rate cell")
    ap.add_argument("--power-reps", type=int, default=4000, help="replications per power cell")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(f"canary compare calibration: margin {100 * MARGIN:.0f} points, 95% intervals, "
          f"{args.reps} replications per cell (± is the Monte Carlo standard error)\n")
    print("1-2. error rates (required: worse under no difference <= 2.5%, no_worse at the margin <= 5%)")
    print(f"{'suite':<22} {'k':>3} {'r':>2}  {'null: worse':>15}  {'null: better':>15}  "
          f"{'margin, spread':>15}  {'margin, concentr.':>17}")
    worst = {"null_worse": 0.0, "margin": 0.0}
    for name, k in SUITES.items():
        for r in REPEATS:
            pa = case_rates(rng, args.reps, k)
            null = verdicts(rng, pa, pa, r)
            spread = verdicts(rng, pa, spread_loss(pa, MARGIN), r)
            conc = verdicts(rng, pa, concentrated_loss(rng, pa, MARGIN), r)
            ni_spread = np.isin(spread, ("no_worse", "better"))
            ni_conc = np.isin(conc, ("no_worse", "better"))
            worst["null_worse"] = max(worst["null_worse"], (null == "worse").mean())
            worst["margin"] = max(worst["margin"], ni_spread.mean(), ni_conc.mean())
            print(f"{name:<22} {k:>3} {r:>2}  {rate(null == 'worse'):>15}  {rate(null == 'better'):>15}  "
                  f"{rate(ni_spread):>15}  {rate(ni_conc):>17}", flush=True)
    se = (lambda p: 100 * math.sqrt(p * (1 - p) / args.reps))
    print(f"\nlargest: worse under no difference {100 * worst['null_worse']:.2f}% ± {se(worst['null_worse']):.2f} "
          f"(nominal 2.5%), no_worse at the margin {100 * worst['margin']:.2f}% ± {se(worst['margin']):.2f} "
          f"(nominal 2.5%, required <= 5%)")

    print(f"\n3. power: share of no-difference comparisons reaching no_worse (or better) at 5 points, "
          f"{args.power_reps} replications per cell")
    print(f"{'suite':<22} {'k':>3} {'mixture':<9}" + "".join(f"{'r=' + str(r):>7}" for r in POWER_REPEATS)
          + "  r for 80%")
    for name, k in SUITES.items():
        for label, mixture in (("realistic", MIXTURE), ("strong", STRONG)):
            shares = []
            for r in POWER_REPEATS:
                pa = case_rates(rng, args.power_reps, k, mixture)
                shares.append(np.isin(verdicts(rng, pa, pa, r), ("no_worse", "better")).mean())
            enough = next((r for r, s in zip(POWER_REPEATS, shares) if s >= 0.8), None)
            print(f"{name:<22} {k:>3} {label:<9}" + "".join(f"{100 * s:7.1f}" for s in shares)
                  + f"  {enough if enough else '> ' + str(POWER_REPEATS[-1])}", flush=True)
    se = 100 * math.sqrt(0.25 / args.power_reps)
    print(f"(power standard errors at most ±{se:.1f} points)")

    print(f"\n4. stored runs whose case rates wobble from day to day: worse under no long-run difference, "
          f"7 days x repeat 3, {args.reps} replications per cell")
    print(f"{'suite':<22} {'k':>3}" + "".join(f"{'sd ' + str(sd):>17}" for sd in WOBBLE))
    z = z_value()
    for name, k in SUITES.items():
        cells = []
        for sd in WOBBLE:
            pa = case_rates(rng, args.reps, k)
            n = np.full(pa.shape, 21.0)
            z0 = score(wobbling_passes(rng, pa, 7, 3, sd), n, wobbling_passes(rng, pa, 7, 3, sd), n, 0.0)[0]
            cells.append(rate(z0 < -z))
        print(f"{name:<22} {k:>3}" + "".join(f"{c:>17}" for c in cells), flush=True)
    print(f"\ntook {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
