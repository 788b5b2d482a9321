"""A model's fingerprint series: its current fingerprint and every probe against it, judged.

Read through `reads.SeriesReads`, so `status`, `history` and `report` read fingerprints as
they read every other series, through the Store or through the driver alone (dbapi.py),
and the daemon's probes (probe.py) through the Store.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import SUITE
from .rule import Judged, Probe, RuleParams, judge, measure

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..reads import FingerprintRow, ProbeRun, SeriesReads

SAMPLES_AT_TEMPERATURE_ZERO = 10  # the paper's phase 2
SAMPLES_AT_DEFAULT_TEMPERATURE = 10  # measured by tests/benchmarks/fingerprint.py (README)
KIND = "model_changed"
RULE = RuleParams()


@dataclass
class Current:
    """A model's current fingerprint: its row and its inputs with their references."""

    row: FingerprintRow
    prompts: list[str]
    references: dict[str, dict[str, int]]
    logprobs: dict[str, dict[str, float] | None]

    @property
    def version(self) -> str:
        return self.row.version


@dataclass
class Point:
    run: ProbeRun
    probe: Probe
    judged: Judged


def current(store: SeriesReads, model: str) -> Current | None:
    """The model's newest fingerprint (by when it was made: one imported later may be older)."""
    found = store.fingerprint(model)
    if found is None:
        return None
    row, inputs = found
    return Current(row, [i.prompt for i in inputs], {i.prompt: i.reference for i in inputs},
                   {i.prompt: i.logprobs for i in inputs})


def rule_for(model: ModelConfig | None) -> RuleParams:
    cfg = model.fingerprint if model is not None else None
    return replace(RULE, min_shift=cfg.min_shift) if cfg is not None else RULE


def samples_per_input(model: ModelConfig, fp: Current) -> int:
    """`samples` if set, else the count that keeps false alarms rare at the temperature probed."""
    cfg = model.fingerprint
    if cfg is not None and cfg.samples:
        return cfg.samples
    return SAMPLES_AT_TEMPERATURE_ZERO if fp.row.temperature == 0 else SAMPLES_AT_DEFAULT_TEMPERATURE


def still_varying(fp: Current) -> int:
    """How many inputs of a fingerprint have more than one answer in their reference."""
    return sum(1 for ref in fp.references.values() if len(Counter(ref)) > 1)


def turn_logprobs(turn: dict) -> list[tuple[str, float]] | None:
    """The stored first-token logprobs of a sample's turn."""
    value = turn.get("top_logprobs")
    return [(t, float(lp)) for t, lp in value] if value else None


def answers(store: SeriesReads, run_ids: list[int]) -> dict[int, tuple[dict, dict]]:
    """Per run: (answers per prompt, first-token logprobs per prompt) of its answered samples."""
    out: dict[int, tuple[dict, dict]] = {r: ({}, {}) for r in run_ids}
    for run_id, prompt, turns in store.answered_turns(run_ids) if run_ids else ():
        given, lps = out[run_id]
        given.setdefault(prompt, []).append(turns[0].get("text", "") if turns else "")
        if turns and (lp := turn_logprobs(turns[0])):
            lps.setdefault(prompt, []).append(lp)
    return out


def series(store: SeriesReads, model: str, fp: Current | None = None, rule: RuleParams = RULE) -> list[Point]:
    """Every complete probe of the model's current fingerprint, oldest first, judged. A probe's
    measurement is read where it was kept (runs.probe); one not measured yet is measured from
    its answers now and kept, so a year of probes reads one row a probe."""
    fp = fp or current(store, model)
    if fp is None:
        return []
    runs = store.probe_runs(model, SUITE, fp.version)
    fresh = measured(store, fp, [r.id for r in runs if r.probe is None])
    store.keep("probe", {run_id: probe.stored() for run_id, probe in fresh.items()})
    probes = [fresh[r.id] if r.probe is None else kept(r.probe, fp) for r in runs]
    return [Point(r, p, j) for r, p, j in zip(runs, probes, judge(probes, rule))]


def kept(stored: dict, fp: Current) -> Probe:
    """A kept measurement, its inputs in the fingerprint's order, as a fresh one has them
    (PostgreSQL's JSONB keeps an object's keys in an order of its own)."""
    probe = Probe.from_stored(stored)
    return replace(probe, per_input={p: probe.per_input[p] for p in fp.prompts if p in probe.per_input})


def measured(store: SeriesReads, fp: Current, run_ids: list[int]) -> dict[int, Probe]:
    """Each probe's measurement from its answers, against the fingerprint's references."""
    given = answers(store, run_ids)
    return {r: measure(fp.references, given[r][0], fp.logprobs, given[r][1]) for r in run_ids}
