"""`canary compare --out FILE.html`: the comparison as one self-contained page.

Per suite: the plain verdict line, an inline SVG chart of both models' pass rates (with
their 95% intervals) and costs per correct answer, the numbers, and the regressed cases with
the failed checks and both models' answers side by side. No script, no network: a page that
opens from a file or an attachment. Every piece of text from a model, a suite or the config
is escaped.
"""
from __future__ import annotations

import math
from html import escape

from .fmt import pct
from .comparison import Report, SuiteResult, comparison_dict, summary

W, BAR, GAP, LEFT, RIGHT = 640, 18, 6, 150, 90
COLOURS = ("#7a8ca3", "#36c")  # A, B

STYLE = """svg{display:block;margin:.4em 0}body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h2{font-size:17px;margin:2em 0 .3em}h3{font-size:14px;margin:1.2em 0 .3em}.meta{color:#666}
.verdict{font-weight:600}.worse{color:#b00}.better,.no_worse{color:#070}.inconclusive{color:#a60}
svg text{font-size:11px;fill:#444}.axis{stroke:#ccc}.ci{stroke-width:3}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}
td:first-child,th:first-child{text-align:left}.case{border:1px solid #ddd;border-radius:4px;padding:.5em 1em;margin:.8em 0}
.answers{display:grid;grid-template-columns:1fr 1fr;gap:1em}.answers pre{white-space:pre-wrap;background:#f7f7f7;
padding:.5em;margin:.2em 0;font-size:12px;max-height:24em;overflow:auto}.checks{color:#b00;margin:.3em 0}"""


def _bars(title: str, rows: list[tuple[str, float | None, str]], top: float) -> str:
    """Horizontal bars from 0: (label, value, text) per model."""
    height = 22 + len(rows) * (BAR + GAP)
    scale = (W - LEFT - RIGHT) / top if top > 0 else 0
    parts = [f'<text x="0" y="12" font-weight="600">{escape(title)}</text>',
             f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="18" y2="{height}"/>']
    for i, (label, value, text) in enumerate(rows):
        y = 20 + i * (BAR + GAP)
        parts.append(f'<text x="0" y="{y + BAR - 5}">{escape(label)}</text>')
        width = (value or 0) * scale
        if value is not None:
            parts.append(f'<rect x="{LEFT}" y="{y}" width="{width:.1f}" height="{BAR}" fill="{COLOURS[i % 2]}">'
                         f'<title>{escape(label)}: {escape(text)}</title></rect>')
        parts.append(f'<text x="{LEFT + width + 6:.1f}" y="{y + BAR - 5}">{escape(text)}</text>')
    return f'<svg viewBox="0 0 {W} {height + 4}" width="{W}" height="{height + 4}">{"".join(parts)}</svg>'


def _rates(rows: list[tuple[str, float | None, float | None, float | None]]) -> str:
    """Pass rates as dots with their 95% intervals, on an axis from a round value below the
    lowest interval to 100% (differences of a few points stay visible)."""
    lows = [r[2] for r in rows if r[2] is not None]
    start = min(0.9, math.floor(min(lows, default=0.0) * 10) / 10)
    height = 36 + len(rows) * (BAR + GAP)
    x = (lambda v: LEFT + (W - LEFT - RIGHT) * (v - start) / (1 - start))
    parts = ['<text x="0" y="12" font-weight="600">pass rate and its 95% interval</text>']
    for tick in (start, (start + 1) / 2, 1.0):
        parts.append(f'<line class="axis" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="18" y2="{height - 14}"/>'
                     f'<text x="{x(tick) - 12:.1f}" y="{height - 2}">{100 * tick:.0f}%</text>')
    for i, (label, value, low, high) in enumerate(rows):
        mid = 20 + i * (BAR + GAP) + BAR / 2
        parts.append(f'<text x="0" y="{mid + 4}">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{LEFT + 4}" y="{mid + 4}">no data</text>')
            continue
        text = f"{pct(value)} ({pct(low)} to {pct(high)})"
        parts.append(f'<line class="ci" x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{mid}" y2="{mid}" '
                     f'stroke="{COLOURS[i % 2]}"/><circle cx="{x(value):.1f}" cy="{mid}" r="5" fill="{COLOURS[i % 2]}">'
                     f'<title>{escape(label)}: {escape(text)}</title></circle>'
                     f'<text x="{x(1.0) + 8:.1f}" y="{mid + 4}">{escape(pct(value))}</text>')
    return f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}">{"".join(parts)}</svg>'


def _chart(result: SuiteResult) -> str:
    c = result.comparison
    models = (c.a, c.b)
    costs = [(m.name, m.cost_per_pass, f"${m.cost_per_pass:.4f}" if m.cost_per_pass is not None
              else "no price, or no pass") for m in models]
    tokens = [(m.name, m.tokens_per_pass, f"{m.tokens_per_pass:,.0f}" if m.tokens_per_pass is not None
               else "no pass") for m in models]
    return (_rates([(m.name, m.pass_rate, m.low, m.high) for m in models])
            + _bars("cost per correct answer (USD)", costs, max([v for _, v, _ in costs if v is not None], default=0))
            + _bars("output tokens per correct answer", tokens,
                    max([v for _, v, _ in tokens if v is not None], default=0)))


def _conversation(turns: list[dict] | None) -> str:
    if not turns:
        return "<p class=meta>no sample of this kind stored</p>"
    out = []
    for i, t in enumerate(turns):
        label = f"turn {i + 1}: " if len(turns) > 1 else ""
        calls = "".join(f"\n→ {escape(str(c.get('name')))}({escape(str(c.get('arguments')))})" for c in t.get("tool_calls") or [])
        out.append(f"<div class=meta>{escape(label)}{escape(t.get('user', ''))}</div>"
                   f"<pre>{escape(t.get('text') or '')}{calls}</pre>")
    return "".join(out)


def _cases(title: str, cases: list[dict], a: str, b: str) -> str:
    if not cases:
        return ""
    out = [f"<h3>{escape(title)} ({len(cases)})</h3>"]
    for d in cases:
        how = "in every sample" if d["flipped"] else f"Fisher p = {d['p_value']:.3g}"
        checks = "".join(f"<li>{escape(x)}</li>" for x in d.get("failed_checks", []))
        out.append(
            f'<div class=case><b>{escape(d["case"])}</b> <span class=meta>{escape(a)} {d["a_passed"]}/'
            f'{d["a_answered"]}, {escape(b)} {d["b_passed"]}/{d["b_answered"]} ({how})</span>'
            f'{"<ul class=checks>" + checks + "</ul>" if checks else ""}<div class=answers>'
            f'<div><b>{escape(a)}</b>{_conversation(d.get("a"))}</div>'
            f'<div><b>{escape(b)}</b>{_conversation(d.get("b"))}</div></div></div>')
    return "".join(out)


def _numbers(data: dict) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("model", "pass rate", "95% CI", "passed/answered", "errors",
                                             "out tokens/pass", "cost/pass", "p50 latency", "runs"))
    rows = []
    for m in (data["a"], data["b"]):
        cost = "-" if m["cost_per_pass"] is None else f"${m['cost_per_pass']:.4f}"
        tokens = "-" if m["tokens_per_pass"] is None else f"{m['tokens_per_pass']:,.0f}"
        latency = "-" if m["latency_p50_ms"] is None else f"{m['latency_p50_ms']:.0f} ms"
        rows.append(f"<tr><td>{escape(m['name'])}</td><td>{pct(m['pass_rate'])}</td>"
                    f"<td>{pct(m['pass_rate_low'])} to {pct(m['pass_rate_high'])}</td>"
                    f"<td>{m['passed']}/{m['answered']}</td><td>{m['errors']} ({pct(m['error_share'])})</td>"
                    f"<td>{tokens}</td><td>{cost}</td><td>{latency}</td><td>{m.get('runs', '-')}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render_comparison(report: Report, generated: str) -> str:
    """The whole page for a comparison report."""
    sections = []
    for result in report.suites:
        data = comparison_dict(result.comparison, report.a, report.b, result)
        diff = ("" if data["difference"] is None else
                f" · difference {100 * data['difference']:+.1f} pts (95% CI {100 * data['difference_low']:+.1f} to "
                f"{100 * data['difference_high']:+.1f}), p = {data['p_value']:.3g}")
        sections.append(
            f'<h2>{escape(data["suite"])}</h2><p class="verdict {escape(data["verdict"])}">{escape(data["summary"])}</p>'
            f'<p class=meta>{data["cases"]} cases paired, {data["samples_per_case"]:.1f} samples per case and model'
            f'{diff} · suite version {escape(str(data["suite_version"])[:12])}</p>'
            f'{_chart(result)}{_numbers(data)}'
            f'{_cases(f"regressed: {report.a} passes them more often than {report.b}", data["regressed"], report.a, report.b)}'
            f'{_cases(f"improved: {report.b} passes them more often than {report.a}", data["improved"], report.a, report.b)}')
    source = ("fresh runs of kind compare" if report.mode == "fresh" else
              f"stored runs since {report.since:%Y-%m-%d %H:%M} UTC" if report.since else "stored runs")
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    title = f"canary compare: {report.a} vs {report.b}"
    return (f"<!doctype html><meta charset=utf-8><title>{escape(title)}</title><style>{STYLE}</style>"
            f"<h1>{escape(title)}</h1><p class=meta>{escape(generated)} · {escape(source)} · non-inferiority margin "
            f"{100 * report.margin:g} points · paired by case (Miettinen-Nurminen stratified score interval)</p>"
            f'<p class="verdict {escape(report.verdict)}">{escape(summary(report))}</p>'
            f"{'<ul class=meta>' + notes + '</ul>' if notes else ''}{''.join(sections)}")
