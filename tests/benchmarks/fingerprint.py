"""Fingerprint: false alarms per model-year, probes to detect swaps of several sizes, daily cost.

Run by hand: `python tests/benchmarks/fingerprint.py [--years N] [--trials N]`.

Each simulated model is the simulator's fingerprint mode (canary/sim_fingerprint.py) with
its own seed. Phase 1 is canary's own (`phase1.find_border_inputs` through `calls.Caller`)
against an in-process provider that answers exactly as the simulator's HTTP server does
(the same `sim_fingerprint` functions, without HTTP, so a model-year takes a second, not
minutes); probes draw their answers from the same functions, and every probe is judged by
canary's own `rule.measure` and `rule.judge` with the defaults. Three endpoint kinds:
- t0+logprobs: temperature 0 and first-token logprobs (an OpenAI-style endpoint),
- t0: temperature 0, no logprobs (an OpenAI-compatible endpoint that returns none),
- default-T: no temperature, no logprobs (the Anthropic API version the SDK sends).

False alarms: `--years` model-years of daily probes of an unchanged model per kind (and per
sample count at the default temperature). Detection: `--trials` swaps per size, each after
30 quiet probes (a formed baseline); the probes until the model_changed episode opens
(capped at 30). A simulator is not a real endpoint: its only day-to-day noise is sampling
(and, for logprobs, the noise LOGPROB_NOISE assumed in sim_fingerprint), where real
endpoints also move with load, batching and routing.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from canary import sim_fingerprint as simfp  # noqa: E402
from canary.config import Fingerprint, ModelConfig  # noqa: E402
from canary.fingerprint.calls import Caller  # noqa: E402
from canary.fingerprint.phase1 import find_border_inputs, _Null  # noqa: E402
from canary.fingerprint.rule import RuleParams, judge, logprob_means, measure  # noqa: E402
from canary.providers.base import Provider, Reply  # noqa: E402

KINDS = {"t0+logprobs": (0, True), "t0": (0, False), "default-T": (None, False)}
SWAPS = [("split shift 5 pts", 0.05, 0.0), ("split shift 10 pts", 0.10, 0.0), ("split shift 25 pts", 0.25, 0.0),
         ("1% of tokens changed", 0.0, 0.01), ("5% of tokens changed", 0.0, 0.05), ("another model", None, None)]
QUIET, CAP = 30, 30


class InProcessSim(Provider):
    """The simulator's fingerprint answers, in process, behind canary's provider interface."""

    def __init__(self, seed: int, temperature, logprobs: bool):
        super().__init__(api_key="-", base_url=None, timeout=1, max_retries=0)
        self.seed, self.temperature, self.logprobs = seed, temperature, logprobs
        self.rng = random.Random(seed)
        self.version, self.shift, self.change = 1, 0.0, 0.0

    def one_token_params(self, params):
        extra = {"temperature": self.temperature} if self.temperature is not None else {}
        return {**params, "max_tokens": 1}, {**extra, **({"logprobs": True} if self.logprobs else {})}

    def model(self, prompt):
        return simfp.prompt_model(self.seed, self.version, self.shift, self.change, prompt)

    def answer(self, prompt):
        m = self.model(prompt)
        lps = simfp.top_logprobs(m, 5, self.rng) if self.logprobs else None
        return simfp.draw(m, self.temperature, self.rng), lps

    async def complete(self, request):
        text, lps = self.answer(request.messages[0].text)
        return Reply(text, [], "length", 10, 1, "sim", top_logprobs=lps)


def make_fingerprint(seed: int, kind: str, cfg: Fingerprint):
    temperature, logprobs = KINDS[kind]
    sim = InProcessSim(seed, temperature, logprobs)
    model = ModelConfig(name="m", provider="openai", model="sim", concurrency=8, price={"input": 5, "output": 25})
    caller = Caller(sim, model, clock=lambda: None)
    found = asyncio.run(find_border_inputs(caller, cfg, cfg.candidates, _Null()))
    refs = {p: {t: found.answers[p].count(t) for t in set(found.answers[p]) if t} for p in found.kept}
    ref_lps = {p: logprob_means(found.logprobs[p]) if found.logprobs.get(p) else None for p in found.kept}
    return sim, refs, ref_lps, found


def probe(sim: InProcessSim, refs, ref_lps, samples: int):
    answers, lps = {}, {}
    for prompt in refs:
        for _ in range(samples):
            text, lp = sim.answer(prompt)
            answers.setdefault(prompt, []).append(text)
            if lp:
                lps.setdefault(prompt, []).append(lp)
    return measure(refs, answers, ref_lps, lps)


def alarms(verdicts) -> int:
    return sum(v.opened for v in verdicts)


def false_alarms(kind: str, samples: int, years: int, cfg: Fingerprint, seed0: int,
                 rule: RuleParams) -> tuple[int, int, list[float]]:
    count, days, noise = 0, 0, []
    for y in range(years):
        sim, refs, ref_lps, _found = make_fingerprint(seed0 + y, kind, cfg)
        probes = [probe(sim, refs, ref_lps, samples) for _ in range(365)]
        verdicts = judge(probes, rule)
        count += alarms(verdicts)
        days += len(probes)
        noise.append(statistics.stdev(p.distance for p in probes))
    return count, days, noise


def detection(kind: str, samples: int, shift: float | None, change: float | None, trials: int, cfg: Fingerprint,
              seed0: int, rule: RuleParams) -> list[int | None]:
    out = []
    for t in range(trials):
        sim, refs, ref_lps, _found = make_fingerprint(seed0 + t, kind, cfg)
        probes = [probe(sim, refs, ref_lps, samples) for _ in range(QUIET)]
        quiet_alarm = alarms(judge(probes, rule))
        if shift is None:  # a different model altogether: another base
            sim.seed += 7919
        else:
            sim.version, sim.shift, sim.change = 2 + t, shift, change
        found = None
        for k in range(1, CAP + 1):
            probes.append(probe(sim, refs, ref_lps, samples))
            if alarms(judge(probes, rule)) > quiet_alarm:
                found = k
                break
        out.append(found)
    return out


def poisson_upper(k: int, exposure: float) -> float:
    """One-sided 95% upper bound of a Poisson rate (k events in `exposure`), by bisection."""
    lo, hi = k / exposure if exposure else 0.0, (k + 10) * 3 / exposure

    def tail(rate):  # P(X <= k) under `rate`
        mu = rate * exposure
        return sum(math.exp(-mu) * mu ** i / math.factorial(i) for i in range(k + 1))

    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > 0.05 else (lo, mid)
    return hi


def summarize(found: list[int | None]) -> str:
    hits = sorted(f for f in found if f is not None)
    share = len(hits) / len(found)
    if not hits:
        return f"detected in 0% within {CAP} probes"
    median = statistics.median(hits) if len(hits) > len(found) / 2 else None
    p90 = hits[math.ceil(0.9 * len(found)) - 1] if len(hits) >= math.ceil(0.9 * len(found)) else None
    return (f"detected {100 * share:.0f}% within {CAP}; median {median if median is not None else '>' + str(CAP)}, "
            f"90th pct {p90 if p90 is not None else '>' + str(CAP)} probes")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--years", type=int, default=40, help="model-years per endpoint kind for false alarms")
    ap.add_argument("--trials", type=int, default=40, help="swaps per size and kind")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--min-shift", type=float, default=0.2, help="the rule's absolute floor (fingerprint.min_shift)")
    ap.add_argument("--no-default-t-sweep", action="store_true", help="skip the 5 and 20 samples rows")
    args = ap.parse_args()
    cfg = Fingerprint()
    rule = RuleParams(min_shift=args.min_shift)
    started = time.perf_counter()
    print(f"defaults: inputs {cfg.inputs}, candidates {cfg.candidates}, reference {cfg.reference}; rule: window 14, "
          f"exclusion 4, min baseline 5, 4 sd and {rule.min_shift} (TV) / {rule.min_logprob_shift} nats (logprobs), "
          f"3 consecutive probes")
    print(f"Monte Carlo: {args.years} model-years per row of false alarms (365 probes each, a fresh model and "
          f"phase 1 per year); {args.trials} swaps per detection cell, each after {QUIET} quiet probes\n")

    print("| endpoint | samples per input | false alarms | per model-year (95% upper) | sd of the daily distance |")
    print("|---|---|---|---|---|")
    rows = [(k, 10) for k in args.kinds.split(",")]
    if "default-T" in args.kinds and not args.no_default_t_sweep:
        rows += [("default-T", 5), ("default-T", 20)]
    for i, (kind, samples) in enumerate(rows):
        k, days, noise = false_alarms(kind, samples, args.years, cfg, 1000 + 100_000 * i, rule)
        years = days / 365
        print(f"| {kind} | {samples} | {k} in {years:.0f} model-years | {k / years:.3f} ({poisson_upper(k, years):.3f}) "
              f"| {statistics.fmean(noise):.4f} |", flush=True)

    print("\n| endpoint (10 samples) | swap | probes to detect |")
    print("|---|---|---|")
    for i, kind in enumerate(args.kinds.split(",")):
        for j, (name, shift, change) in enumerate(SWAPS):
            found = detection(kind, 10, shift, change, args.trials, cfg, 5_000_000 + 10_000 * i + 1000 * j, rule)
            print(f"| {kind} | {name} | {summarize(found)} |", flush=True)

    sim, refs, _lps, found = make_fingerprint(7, "t0+logprobs", cfg)
    calls = len(refs) * 10
    print(f"\ndaily cost (defaults, 10 samples): {calls} one-token calls, ~{calls * 10:,} input and {calls:,} output "
          f"tokens (the simulator counts ~10 input tokens for a one-word chat message); at $5/M input and "
          f"$25/M output: ${(calls * 10 * 5 + calls * 25) / 1e6:.4f} a day. Phase 1 (one model): {found.calls} calls, "
          f"{found.tried} candidates screened, {len(found.border)} border candidates.")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
