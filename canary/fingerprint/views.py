"""What people and scrapers see of fingerprints: status, history, /metrics, the report's section."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ..config import Config
from ..messages import anchor
from . import SUITE
from .series import KIND, Point, current, rule_for, samples_per_input, series, still_varying

if TYPE_CHECKING:
    from ..reads import SeriesReads


def history(store: SeriesReads, config: Config, model: str) -> list[dict]:
    """Every probe of the current fingerprint with its distance and the band it was judged against."""
    m = next((m for m in config.models if m.name == model), None)
    return [_row(p) for p in series(store, model, rule=rule_for(m))]


def _row(p: Point) -> dict:
    j = p.judged
    return {"slot": p.run.slot, "run_ids": [p.run.id], "kind": p.run.kind, "distance": j.value, "mean": j.mean,
            "upper": j.upper, "lower": j.lower, "logprob": j.logprob, "logprob_mean": j.logprob_mean,
            "verdict": j.status, "in_alert": j.alert, "answered": p.run.passed, "errors": p.run.errors,
            "inputs": len(p.probe.per_input)}


def status(store: SeriesReads, config: Config, model: str, recent: int = 5) -> dict:
    """`canary fingerprint status`: inputs, reference, last probes, distance and band, alert state."""
    m = next((m for m in config.models if m.name == model), None)
    fp = current(store, model)
    open_alerts = [a for a in store.open_alerts(model, SUITE) if a.kind == KIND]
    out = {"model": model, "configured": bool(m and m.fingerprint), "fingerprint": None, "probes": [],
           "alert": None}
    if open_alerts:
        out["alert"] = {"opened_at": open_alerts[0].opened_at, "reason": open_alerts[0].details.get("reason")}
    if fp is None:
        return out
    r = fp.row
    out["fingerprint"] = {
        "version": r.version, "origin": r.origin, "referenced_at": r.created_at, "inputs": fp.prompts,
        "varying_inputs": still_varying(fp), "candidates": r.candidates, "border": r.border,
        "temperature": r.temperature, "logprobs": r.logprobs,
        "samples_per_probe": len(fp.prompts) * samples_per_input(m, fp) if m else None}
    out["probes"] = [_row(p) for p in series(store, model, fp, rule_for(m))[-recent:]]
    return out


def status_rows(store: SeriesReads, config: Config, next_run) -> list[dict]:
    """The `fingerprint` series of `canary status`: one row per fingerprinted model."""
    rows = []
    for m in config.models:
        if m.fingerprint is None:
            continue
        points = series(store, m.name, rule=rule_for(m))
        last = _row(points[-1]) if points else {}
        rows.append({"model": m.name, "suite": SUITE, "last_run": last.get("slot"), "last_status": "complete" if points
                     else None, "pass_rate": None, "passed": None, "answered": None, "errors": last.get("errors"),
                     "distance": last.get("distance"), "mean": last.get("mean"), "upper": last.get("upper"),
                     "lower": None, "verdict": last.get("verdict"),
                     "alerts": [a.kind for a in store.open_alerts(m.name, SUITE)],
                     "next_run": next_run(config, m), "fingerprinted": current(store, m.name) is not None})
    return rows


def metric_families(store: SeriesReads, config: Config) -> list:
    """`canary_fingerprint_distance{model}` and its band, for /metrics (prometheus_client families)."""
    from prometheus_client.core import GaugeMetricFamily
    distance = GaugeMetricFamily("canary_fingerprint_distance",
                                 "Mean TV distance of the latest fingerprint probe from its reference", labels=["model"])
    upper = GaugeMetricFamily("canary_fingerprint_band_upper",
                              "The distance above which a probe deviates from its baseline", labels=["model"])
    for m in config.models:
        if m.fingerprint is None:
            continue
        points = series(store, m.name, rule=rule_for(m))
        if points and points[-1].judged.value is not None:
            distance.add_metric([m.name], points[-1].judged.value)
            if points[-1].judged.upper is not None:
                upper.add_metric([m.name], points[-1].judged.upper)
    return [distance, upper]


def report_section(store: SeriesReads, config: Config, now: datetime) -> str:
    """The report's fingerprint sections, drawn like the series' small charts: per fingerprinted
    model, the distance of each probe from the reference, and the edge above which it deviates."""
    from ..report_charts import e, epoch_minutes, mini_chart
    parts = []
    for m in config.models:
        if m.fingerprint is None:
            continue
        rows = [r for r in history(store, config, m.name) if r["distance"] is not None]
        changed = any(a.kind == "model_changed" for a in store.open_alerts(m.name, SUITE))
        cls, words = ("bad", "model changed") if changed else ("good", "as referenced") if rows else \
            ("quiet", "no probes yet")
        three = (lambda v: f"{v:.3f}")  # noqa: E731
        charts = (mini_chart("distance from the reference (mean total variation)", [r["distance"] for r in rows],
                             three, "tv", [], "")
                  + mini_chart("deviating above", [r["upper"] for r in rows], three, "tv", [], "")) if rows else ""
        parts.append(
            f'<section class="series" id="{e(anchor(m.name, SUITE))}" data-t="{epoch_minutes([r["slot"] for r in rows])}">'
            f'<h2><span>{e(m.name)}</span> · <span>fingerprint</span> <span class="badge {cls}">{e(words)}</span></h2>'
            f'<p class="meta">one-token probes of the border inputs: a model, quantization or serving path swapped '
            f'behind the name moves their first tokens together</p><div class="minis">{charts}</div></section>')
    return "".join(parts)
