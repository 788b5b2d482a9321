"""`canary report`: one self-contained HTML page, a chart per series with its band and alerts."""
from __future__ import annotations

import html
from datetime import datetime

from .config import Config
from .reports import history, status
from .store import Store

W, H, PAD = 640, 180, 32


def _chart(points: list[dict]) -> str:
    """An inline SVG: pass rate per run, the baseline mean and the alert floor, breaches in red."""
    if not points:
        return "<p class=empty>no completed runs yet</p>"
    n = len(points)
    x = (lambda i: PAD + (W - 2 * PAD) * (i / (n - 1) if n > 1 else 0.5))
    y = (lambda v: H - PAD + (2 * PAD - H) * v)  # 0% at the bottom, 100% at the top

    def line(key: str, cls: str) -> str:
        pts = [(x(i), y(p[key])) for i, p in enumerate(points) if p[key] is not None]
        return f'<polyline class="{cls}" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>' if pts else ""

    dots = []
    for i, p in enumerate(points):
        if p["pass_rate"] is None:
            continue
        cls = "breach" if p["verdict"] == "breach" else ("alert" if p["in_alert"] else "ok")
        title = html.escape(f'{p["slot"]:%Y-%m-%d %H:%M}: {100 * p["pass_rate"]:.1f}% '
                            f'({p["passed"]}/{p["answered"]}), {p["errors"]} errors, {p["verdict"]}')
        dots.append(f'<circle class="{cls}" cx="{x(i):.1f}" cy="{y(p["pass_rate"]):.1f}" r="3.5"><title>{title}</title></circle>')
    grid = "".join(f'<line class="grid" x1="{PAD}" x2="{W - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                   f'<text x="2" y="{y(v) + 4:.1f}">{int(v * 100)}%</text>' for v in (0, 0.5, 1))
    return (f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}">{grid}{line("mean", "mean")}'
            f'{line("lower", "lower")}{line("pass_rate", "rate")}{"".join(dots)}</svg>')


STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}h2{font-size:16px;margin:1.5em 0 .3em}
svg text{font-size:10px;fill:#888}.grid{stroke:#eee}.rate{fill:none;stroke:#36c;stroke-width:1.5}
.mean{fill:none;stroke:#999;stroke-dasharray:4 3}.lower{fill:none;stroke:#d55;stroke-dasharray:2 2}
circle.ok{fill:#36c}circle.breach{fill:#d22}circle.alert{fill:#f90}.meta{color:#666}.empty{color:#999}"""


def render_report(store: Store, config: Config, suites: dict, now: datetime) -> str:
    sections = []
    for row in status(store, config, suites, now):
        points = history(store, config, row["model"], row["suite"])
        state = ", ".join(row["alerts"]) or "ok"
        sections.append(
            f'<h2>{html.escape(row["model"])} · {html.escape(row["suite"])}</h2>'
            f'<div class=meta>alerts: {html.escape(state)} · last run: {row["last_run"] or "-"} · '
            f'next run: {row["next_run"] or "-"}</div>{_chart(points)}')
    legend = ("blue: pass rate of answered samples · grey dashes: expected rate (each case at its baseline rate; "
              "the baseline mean for sigma_run) · red dashes: alert floor "
              f"({html.escape(config.detection.method)}) · red dot: breach · orange dot: while an alert was open")
    return (f"<!doctype html><meta charset=utf-8><title>canary report</title><style>{STYLE}</style>"
            f"<h1>canary report</h1><p class=meta>{now:%Y-%m-%d %H:%M} UTC · {legend}</p>{''.join(sections)}")
