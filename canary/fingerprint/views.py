"""What people and scrapers see of fingerprints: status, history, /metrics, the report's section."""
from __future__ import annotations

import html
from datetime import datetime

from .. import alerts
from ..config import Config
from ..messages import anchor
from ..store import Store
from . import SUITE
from .probe import KIND, Point, current, rule_for, samples_per_input, series, still_varying


def history(store: Store, config: Config, model: str) -> list[dict]:
    """Every probe of the current fingerprint with its distance and the band it was judged against."""
    m = next((m for m in config.models if m.name == model), None)
    return [_row(p) for p in series(store, model, rule=rule_for(m))]


def _row(p: Point) -> dict:
    j = p.judged
    return {"slot": p.run.slot, "run_ids": [p.run.id], "kind": p.run.kind, "distance": j.value, "mean": j.mean,
            "upper": j.upper, "lower": j.lower, "logprob": j.logprob, "logprob_mean": j.logprob_mean,
            "verdict": j.status, "in_alert": j.alert, "answered": p.run.passed, "errors": p.run.errors,
            "inputs": len(p.probe.per_input)}


def status(store: Store, config: Config, model: str, recent: int = 5) -> dict:
    """`canary fingerprint status`: inputs, reference, last probes, distance and band, alert state."""
    m = next((m for m in config.models if m.name == model), None)
    fp = current(store, model)
    open_alerts = [a for a in alerts.open_alerts(store, model, SUITE) if a.kind == KIND]
    out = {"model": model, "configured": bool(m and m.fingerprinted), "fingerprint": None, "probes": [],
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


def status_rows(store: Store, config: Config, next_run) -> list[dict]:
    """The `fingerprint` series of `canary status`: one row per fingerprinted model."""
    rows = []
    for m in config.models:
        if m.fingerprinted is None:
            continue
        points = series(store, m.name, rule=rule_for(m))
        last = _row(points[-1]) if points else {}
        rows.append({"model": m.name, "suite": SUITE, "last_run": last.get("slot"), "last_status": "complete" if points
                     else None, "pass_rate": None, "passed": None, "answered": None, "errors": last.get("errors"),
                     "distance": last.get("distance"), "mean": last.get("mean"), "upper": last.get("upper"),
                     "lower": None, "verdict": last.get("verdict"),
                     "alerts": [a.kind for a in alerts.open_alerts(store, m.name, SUITE)],
                     "next_run": next_run(config, m), "fingerprinted": current(store, m.name) is not None})
    return rows


def metric_families(store: Store, config: Config) -> list:
    """`canary_fingerprint_distance{model}` and its band, for /metrics (prometheus_client families)."""
    from prometheus_client.core import GaugeMetricFamily
    distance = GaugeMetricFamily("canary_fingerprint_distance",
                                 "Mean TV distance of the latest fingerprint probe from its reference", labels=["model"])
    upper = GaugeMetricFamily("canary_fingerprint_band_upper",
                              "The distance above which a probe deviates from its baseline", labels=["model"])
    for m in config.models:
        if m.fingerprinted is None:
            continue
        points = series(store, m.name, rule=rule_for(m))
        if points and points[-1].judged.value is not None:
            distance.add_metric([m.name], points[-1].judged.value)
            if points[-1].judged.upper is not None:
                upper.add_metric([m.name], points[-1].judged.upper)
    return [distance, upper]


W, H, PAD = 640, 150, 32


def _chart(rows: list[dict]) -> str:
    """An inline SVG: the distance per probe, its band's upper edge, deviating probes in red."""
    pts = [r for r in rows if r["distance"] is not None]
    if not pts:
        return "<p class=empty>no probes yet</p>"
    top = max(max(r["distance"] for r in pts), max((r["upper"] or 0) for r in pts), 0.1) * 1.1
    x = (lambda i: PAD + (W - 2 * PAD) * (i / (len(pts) - 1) if len(pts) > 1 else 0.5))
    y = (lambda v: H - PAD + (2 * PAD - H) * v / top)
    line = " ".join(f"{x(i):.1f},{y(r['distance']):.1f}" for i, r in enumerate(pts))
    band = " ".join(f"{x(i):.1f},{y(r['upper']):.1f}" for i, r in enumerate(pts) if r["upper"] is not None)
    dots = []
    for i, r in enumerate(pts):
        cls = "breach" if r["verdict"] == "deviating" else "alert" if r["in_alert"] else "ok"
        title = html.escape(f"{r['slot']:%Y-%m-%d %H:%M}: distance {r['distance']:.3f}, {r['verdict']}")
        dots.append(f'<circle class="{cls}" cx="{x(i):.1f}" cy="{y(r["distance"]):.1f}" r="3">'
                    f'<title>{title}</title></circle>')
    return (f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}"><text x="2" y="{y(0) + 4:.1f}">0</text>'
            f'<text x="2" y="{y(top / 1.1) + 4:.1f}">{top / 1.1:.2f}</text>'
            f'<polyline class="lower" points="{band}"/><polyline class="rate" points="{line}"/>{"".join(dots)}</svg>')


def report_section(store: Store, config: Config, now: datetime) -> str:
    """The report's fingerprint section: per fingerprinted model, its distance series and band."""
    parts = []
    for m in config.models:
        if m.fingerprinted is None:
            continue
        rows = history(store, config, m.name)
        state = ", ".join(a.kind for a in alerts.open_alerts(store, m.name, SUITE)) or "ok"
        heading = f'<h2 id="{html.escape(anchor(m.name, SUITE))}">{html.escape(m.name)} · fingerprint</h2>'
        parts.append(f"{heading}<div class=meta>alerts: {html.escape(state)} · "
                     f"blue: mean TV distance of the border inputs' first tokens from their reference · "
                     f"red dashes: the band's upper edge</div>{_chart(rows)}")
    return "".join(parts)
