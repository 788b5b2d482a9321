"""The fingerprint's arithmetic, pure: distances, the choice of border inputs, the judgement.

A probe's value is the mean, over the border inputs, of the total-variation distance
between the input's first-token answers today and its reference distribution (empty
answers, a reasoning model's, are left out). Where the API returns first-token logprobs,
a second value is their mean absolute change from the reference (each call's missing
alternatives censored at its lowest returned logprob, as in "Log Probability Tracking of
LLM APIs"), averaged over the inputs.

The judgement is the production rule of "Token-Efficient Change Detection in LLM APIs":
a probe deviates when its value is further from the trailing baseline's mean than both an
absolute floor and `sigma` baseline sds; the baseline is the last `window` probes before
the `exclusion` most recent ones, and there is no verdict before `min_baseline` of them; a
change is called after `persistence` consecutive deviating probes, dated at the first.
Adapted for an alert that stays open until it is resolved (the paper re-arms after a
cooldown instead): the probes of an episode, from its first deviating probe, never enter a
later baseline, so the baseline keeps describing the model as it was; the episode closes
after `persistence` consecutive probes back inside the band (a symmetric hysteresis, so a
value near the threshold does not flap). The logprob value, where there is one, is judged
by the same rule with its own floor; a probe deviates when either value does.
"""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ..detect import mean_sd


def distribution(answers: Iterable[str]) -> Counter:
    """Counts of the non-empty first tokens among answers."""
    return Counter(a for a in answers if a)


def tv_distance(p: Mapping[str, int], q: Mapping[str, int]) -> float | None:
    """Total-variation distance between two count distributions (None if one is empty)."""
    np_, nq = sum(p.values()), sum(q.values())
    if not np_ or not nq:
        return None
    return sum(abs(p.get(t, 0) / np_ - q.get(t, 0) / nq) for t in set(p) | set(q)) / 2


def balance(counts: Mapping[str, int]) -> float:
    """How evenly an input splits: the second answer's count over the first's (0 for one answer)."""
    top = sorted(counts.values(), reverse=True)
    return top[1] / top[0] if len(top) > 1 and top[0] else 0.0


def logprob_means(calls: Sequence[Sequence[tuple[str, float]]]) -> dict[str, float]:
    """Mean logprob of every token seen in any call's top alternatives; a token a call did not
    return counts as that call's lowest returned logprob (left censoring)."""
    calls = [c for c in calls if c]
    seen = {tok for c in calls for tok, _ in c}
    sums = dict.fromkeys(seen, 0.0)
    for c in calls:
        values = dict(c)
        floor = min(values.values())
        for tok in seen:
            sums[tok] += values.get(tok, floor)
    return {tok: s / len(calls) for tok, s in sums.items()} if calls else {}


def logprob_distance(ref: Mapping[str, float], now: Mapping[str, float]) -> float | None:
    """Mean absolute difference of two logprob means over the tokens either has (censored)."""
    if not ref or not now:
        return None
    ref_floor, now_floor = min(ref.values()), min(now.values())
    tokens = set(ref) | set(now)
    return sum(abs(ref.get(t, ref_floor) - now.get(t, now_floor)) for t in tokens) / len(tokens)


@dataclass(frozen=True)
class Probe:
    """One probe's values: the mean TV distance, the mean logprob change, and the TV per input."""

    distance: float | None
    logprob: float | None = None
    per_input: Mapping[str, float] = field(default_factory=dict)

    def stored(self) -> dict:
        """What is kept with the probe's run (runs.probe)."""
        return {"distance": self.distance, "logprob": self.logprob, "per_input": dict(self.per_input)}

    @classmethod
    def from_stored(cls, data: Mapping) -> "Probe":
        return cls(data["distance"], data.get("logprob"), data.get("per_input") or {})


def measure(references: Mapping[str, Mapping[str, int]], answers: Mapping[str, Sequence[str]],
            ref_logprobs: Mapping[str, Mapping[str, float] | None] | None = None,
            logprobs: Mapping[str, Sequence[Sequence[tuple[str, float]]]] | None = None) -> Probe:
    """A probe's values from its answers per input (inputs with no answer today are left out)."""
    per_input = {}
    for prompt, ref in references.items():
        tv = tv_distance(ref, distribution(answers.get(prompt, ())))
        if tv is not None:
            per_input[prompt] = tv
    lps = []
    for prompt, ref in (ref_logprobs or {}).items():
        if ref and (calls := (logprobs or {}).get(prompt)):
            if (d := logprob_distance(ref, logprob_means(calls))) is not None:
                lps.append(d)
    return Probe(statistics.fmean(per_input.values()) if per_input else None,
                 statistics.fmean(lps) if lps else None, per_input)


@dataclass(frozen=True)
class RuleParams:
    window: int = 14  # baseline probes
    exclusion: int = 4  # most recent probes kept out of the baseline
    min_baseline: int = 5  # no verdict before this many baseline probes
    sigma: float = 4.0  # a deviation must exceed this many baseline sds...
    min_shift: float = 0.2  # ...and this much TV distance (absolute)
    min_logprob_shift: float = 0.05  # ...or, for the logprob value, this many nats
    persistence: int = 3  # consecutive deviating probes that call a change (and calm ones that end it)


@dataclass(frozen=True)
class Judged:
    """The verdict on one probe and the episode state after it."""

    status: str  # no_verdict | ok | deviating
    value: float | None
    mean: float | None = None  # the baseline's mean distance
    sd: float | None = None
    upper: float | None = None  # deviating above this (or below `lower`)
    lower: float | None = None
    logprob: float | None = None
    logprob_mean: float | None = None
    logprob_upper: float | None = None
    baseline: tuple[int, ...] = ()  # indices of the baseline probes
    alert: bool = False  # an episode is open after this probe
    opened: bool = False
    closed: bool = False
    onset: int | None = None  # index of the open episode's first deviating probe
    reason: str = ""


def _band(values: list[float], sigma: float, floor: float) -> tuple[float, float, float]:
    mean, sd = mean_sd(values)
    return mean, sd, max(floor, sigma * sd)


def judge(probes: Sequence[Probe], p: RuleParams = RuleParams()) -> list[Judged]:
    """Every probe of one fingerprint (oldest first) judged, with the episode state after it."""
    out: list[Judged] = []
    excluded: set[int] = set()
    usable: list[int] = []  # the probes a baseline may draw on, oldest first: one more each step

    def exclude(indices: Iterable[int]) -> None:
        for j in indices:
            excluded.add(j)
            if j in usable[-p.persistence:]:  # only with persistence > exclusion + 1
                usable.remove(j)

    streak = calm = 0
    onset: int | None = None
    for i, probe in enumerate(probes):
        j = i - p.exclusion - 1  # the probe leaving the excluded most recent ones
        if j >= 0 and j not in excluded and probes[j].distance is not None:
            usable.append(j)
        baseline = usable[-p.window:]
        if probe.distance is None or len(baseline) < p.min_baseline:
            if onset is not None:
                exclude((i,))
            why = "no answer to compare" if probe.distance is None else \
                f"baseline forming ({len(baseline)} of {p.min_baseline} probes)"
            out.append(Judged("no_verdict", probe.distance, logprob=probe.logprob, baseline=tuple(baseline),
                              alert=onset is not None, onset=onset, reason=why))
            continue
        mean, sd, limit = _band([probes[j].distance for j in baseline], p.sigma, p.min_shift)
        deviating = abs(probe.distance - mean) > limit
        reason = f"distance {probe.distance:.3f}, usual {mean:.3f} (band {max(mean - limit, 0):.3f} to {mean + limit:.3f})"
        lp_mean = lp_upper = None
        lp_base = [probes[j].logprob for j in baseline if probes[j].logprob is not None]
        if probe.logprob is not None and len(lp_base) >= p.min_baseline:
            lp_mean, _lp_sd, lp_limit = _band(lp_base, p.sigma, p.min_logprob_shift)
            lp_upper = lp_mean + lp_limit
            if abs(probe.logprob - lp_mean) > lp_limit:
                deviating = True
                reason += f"; logprob change {probe.logprob:.3f}, usual {lp_mean:.3f} (limit {lp_upper:.3f})"
        opened = closed = False
        if onset is not None:
            exclude((i,))
            calm = 0 if deviating else calm + 1
            if calm >= p.persistence:
                onset, closed, calm = None, True, 0
        else:
            streak = streak + 1 if deviating else 0
            if streak >= p.persistence:
                onset, opened, streak = i - p.persistence + 1, True, 0
                exclude(range(onset, i + 1))
        out.append(Judged("deviating" if deviating else "ok", probe.distance, mean, sd, mean + limit, mean - limit,
                          probe.logprob, lp_mean, lp_upper, tuple(baseline), onset is not None, opened, closed,
                          onset, reason))
    return out
