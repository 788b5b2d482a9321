"""The report's charts as inline SVG: pass rate with its band, the small series, axes. Output only.

Every chart draws in a 1000 x 1000 plot space stretched to its box (`preserveAspectRatio=none`),
so it fills the page's width at 1400 px and on a phone alike; strokes and dots keep their
pixel size (`vector-effect: non-scaling-stroke`; a dot is a zero-length round-capped line),
and the axis labels are HTML placed in percent, so text is never stretched. Run i of n sits
at the centre of the i-th of n equal slots: every run gets the same width whatever the gaps
between slots, and the dates on the axis say when they were.
"""
from __future__ import annotations

import html
import math
from datetime import datetime
from functools import lru_cache
from typing import Callable, Sequence

import orjson

from . import fmt
from .report_view import Episode, PointView, ReportView, SeriesView

W, H = 1000.0, 1000.0  # the plot space; coordinates are written as whole numbers
VERDICT_WORDS = {"breach": "below the floor", "ok": "inside the band", "no_verdict": "no verdict"}


def e(value) -> str:
    return html.escape(str(value), quote=True)


def pct(x: float | None, digits: int = 1) -> str:
    return fmt.pct(x, digits, missing="–")


def when(dt: datetime | None) -> str:
    return "–" if dt is None else f"{dt:%Y-%m-%d %H:%M}"


def short(dt: datetime | None, now: datetime) -> str:
    """A time in a narrow column: "Nov 14, 06:00", with the year when it is not this one."""
    if dt is None:
        return "–"
    return f"{day(dt)}{'' if dt.year == now.year else f' {dt.year}'}, {dt:%H:%M}"


def day(dt: datetime) -> str:
    return f"{dt:%b} {dt.day}"


def x_at(i: float, n: int) -> float:
    return (i + 0.5) / n * W


@lru_cache(maxsize=64)
def _xs(n: int) -> list[str]:
    """The x of each of n runs' centres, written out once per chart width (a series' charts
    share it; a year is 365 of them a line)."""
    return [str(round(x_at(i, n))) for i in range(n)]


def _f(v: float) -> str:
    return f"{v:.0f}"


def _p(v: float) -> str:
    """A percentage for a CSS position."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


# --- scales ---------------------------------------------------------------------------------------

def rate_scale(points: Sequence[PointView]) -> tuple[float, float]:
    """The y range of a pass-rate chart: the rates and the band, padded (a dot at 100% is not cut
    in half), at least 4 points tall, never further than the padding beyond 0 and 100%."""
    values = [v for p in points if p.judged for v in (p.rate, p.lower, p.upper, p.mean) if v is not None]
    if not values:
        return 0.0, 1.0
    lo, hi = max(min(values), 0.0), min(max(values), 1.0)
    if hi - lo < 0.04:
        lo, hi = (lo, lo + 0.04) if lo < 0.5 else (hi - 0.04, hi)
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def value_scale(values: Sequence[float | None]) -> tuple[float, float] | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    pad = max((hi - lo) * 0.15, abs(hi) * 0.02, 1e-9)
    return max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad


def ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Round values between lo and hi (at most `most` of them)."""
    span = hi - lo
    if span <= 0:
        return [lo]
    step = 10 ** math.floor(math.log10(span / most))
    for mult in (1, 2, 2.5, 5, 10):
        if span / (step * mult) <= most:
            step *= mult
            break
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 10) for k in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def date_ticks(slots: Sequence[datetime], major: int = 4) -> list[tuple[int, str, bool]]:
    """(index, label, minor) of the runs to label on a dated axis: `major` labels spread from the
    first run to the last, and a minor one between each two (hidden on a phone).

    Labels are days ("Nov 14"), times of day when every run is on one day, or months when
    the runs span more than a year; a label already shown is not repeated."""
    n = len(slots)
    if not n:
        return []
    one_day = slots[0].date() == slots[-1].date()
    long = (slots[-1] - slots[0]).days > 370

    def label(dt: datetime) -> str:
        return f"{dt:%H:%M}" if one_day else (f"{dt:%b %Y}" if long else day(dt))
    steps = 2 * (major - 1)
    picks: dict[int, bool] = {}
    for k in range(steps + 1):
        i = round(k * (n - 1) / steps)
        picks[i] = picks.get(i, True) and k % 2 == 1  # an index both major and minor is major
    out, seen = [], set()
    for i in sorted(picks):
        text = label(slots[i])
        if text not in seen:
            seen.add(text)
            out.append((i, text, picks[i]))
    return out


# --- building blocks --------------------------------------------------------------------------------

def _y(v: float, lo: float, hi: float) -> float:
    return H - (v - lo) / (hi - lo) * H if hi > lo else H / 2


def _linear(lo: float, hi: float) -> tuple[float, float]:
    """(a, b) with `_y(v, lo, hi) == a + b * v`: the scale once per line, not once per point."""
    if hi > lo:
        return H + lo / (hi - lo) * H, -H / (hi - lo)
    return H / 2, 0.0


def _segments(values: Sequence[float | None]) -> list[list[int]]:
    """Runs of consecutive indexes whose value is known (a missing value breaks the line)."""
    out, current = [], []
    for i, v in enumerate(values):
        if v is None:
            if current:
                out.append(current)
                current = []
        else:
            current.append(i)
    if current:
        out.append(current)
    return out


def polyline(values: Sequence[float | None], lo: float, hi: float, cls: str) -> str:
    n, parts = len(values), []
    (a, b), xs = _linear(lo, hi), _xs(n)
    for seg in _segments(values):
        if len(seg) == 1:  # a lone value: a short level tick across its slot
            i = seg[0]
            parts.append(f"M{_f(i / n * W)} {_f(_y(values[i], lo, hi))}h{_f(max(W / n, 1))}")
        else:
            parts.append("M" + "L".join([f"{xs[i]} {round(a + b * values[i])}" for i in seg]))
    return f'<path class="{cls}" d="{"".join(parts)}"/>' if parts else ""


def band(points: Sequence[PointView], lo: float, hi: float) -> str:
    """The shaded band between the floor and its mirror above the mean, where a run had one."""
    n, shapes = len(points), []
    (a, b), all_xs = _linear(lo, hi), _xs(n)
    uppers = [p.upper for p in points]
    for idx in _segments(uppers):
        xs = [all_xs[i] for i in idx]
        if len(idx) == 1:
            xs = [_f(idx[0] / n * W), _f((idx[0] + 1) / n * W)]
            idx = idx * 2
        top = [f"{x} {round(a + b * uppers[i])}" for x, i in zip(xs, idx)]
        bottom = [f"{x} {round(a + b * points[i].lower)}" for x, i in zip(xs, idx)]
        shapes.append("M" + "L".join(top + bottom[::-1]) + "Z")
    return f'<path class="band" d="{"".join(shapes)}"/>' if shapes else ""


def dots(n: int, items: list[tuple[int, float, str]], lo: float, hi: float) -> str:
    """Dots grouped by class: one path per class (a zero-length segment per dot)."""
    by_class: dict[str, list[str]] = {}
    (a, b), xs = _linear(lo, hi), _xs(n)
    for i, v, cls in items:
        by_class.setdefault(cls, []).append(f"M{xs[i]} {round(a + b * v)}h0")
    return "".join(f'<path class="{cls}" d="{"".join(d)}"/>' for cls, d in by_class.items())


def spans(episodes: Sequence[Episode], n: int, kinds: tuple[str, ...]) -> str:
    """Alert episodes as shaded HTML spans over a plot (CSS draws them unstretched, with a label)."""
    out = []
    for ep in episodes:
        if ep.kind not in kinds:
            continue
        end = max(n if ep.end is None else ep.end, ep.start + 1)
        cls = "ep q" if ep.kind == "quality" else "ep o"
        title = f"{ep.title}: {when(ep.opened_at)} to " + (
            f"{when(ep.closed_at)} ({ep.closed_by})" if ep.closed_at else "now (still open)")
        label = "alert" if ep.kind == "quality" else ep.title
        out.append(f'<div class="{cls}" style="left:{_p(ep.start / n * 100)}%;width:{_p((end - ep.start) / n * 100)}%" '
                   f'title="{e(title)}"><span>{e(label)}</span></div>')
    return "".join(out)


def columns(indexes: Sequence[int], n: int, cls: str, titles: Sequence[str]) -> str:
    """Whole-height HTML columns over a plot, one per run index (runs too errored for a verdict)."""
    return "".join(f'<div class="{cls}" style="left:{_p(i / n * 100)}%;width:{_p(100 / n)}%" title="{e(t)}"></div>'
                   for i, t in zip(indexes, titles))


def svg(body: str, cls: str = "") -> str:
    return (f'<svg class="{cls}" viewBox="0 0 {_f(W)} {_f(H)}" preserveAspectRatio="none" '
            f'aria-hidden="true">{body}</svg>')


def y_labels(values: Sequence[float], lo: float, hi: float, fmt: Callable[[float], str]) -> str:
    return "".join(f'<span style="top:{_p(_y(v, lo, hi) / H * 100)}%">{e(fmt(v))}</span>' for v in values)


def x_labels(slots: Sequence[datetime]) -> str:
    n = len(slots)
    return "".join(f'<span class="{"minor" if minor else ""}" style="left:{_p((i + 0.5) / n * 100)}%">{e(text)}</span>'
                   for i, text, minor in date_ticks(slots))


def gridlines(values: Sequence[float], lo: float, hi: float) -> str:
    return "".join(f'<path class="grid" d="M0 {_f(_y(v, lo, hi))}H{_f(W)}"/>' for v in values)


# --- the charts -------------------------------------------------------------------------------------

# what the page's script needs to write a run's tooltip: numbers only (the page stays light)
CONFIRMED, JUDGED, BREACH, OK, IN_ALERT = 1, 2, 4, 8, 16


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def epoch_minutes(slots: Sequence[datetime]) -> str:
    """The slots as minutes since 1970 (UTC), a JSON array: the x of every chart of a series."""
    epoch = datetime(1970, 1, 1)
    return orjson.dumps([int((s - epoch).total_seconds() // 60) for s in slots]).decode()


def point_data(p: PointView) -> list:
    flags = (CONFIRMED * p.confirmed | JUDGED * p.judged | BREACH * (p.verdict == "breach")
             | OK * (p.verdict == "ok") | IN_ALERT * p.in_alert)
    return [p.passed, p.answered, p.errors, _r(p.mean), _r(p.lower), flags]


def pass_rate_chart(s: SeriesView, view: ReportView) -> str:
    pts, n = s.points, len(s.points)
    lo, hi = rate_scale(pts)
    steps = [v for v in ticks(lo, hi, 5) if 0 <= v <= 1]
    digits = 0 if all(abs(v * 100 - round(v * 100)) < 1e-6 for v in steps) else 1
    marks = [(i, p.rate, "dot breach" if p.verdict == "breach" else "dot") for i, p in enumerate(pts) if p.judged]
    marks += [(i, p.rate, "hole") for i, p in enumerate(pts) if p.judged and p.verdict == "breach"]
    halos = [(i, p.rate, "halo") for i, p in enumerate(pts) if p.judged and p.error_heavy]
    unjudged = [i for i, p in enumerate(pts) if not p.judged]
    body = (gridlines(steps, lo, hi) + band(pts, lo, hi) + polyline([p.mean for p in pts], lo, hi, "mean")
            + polyline([p.lower for p in pts], lo, hi, "floor")
            + polyline([p.rate if p.judged else None for p in pts], lo, hi, "rate")
            + dots(n, halos, lo, hi) + dots(n, marks, lo, hi))
    overlays = (spans(s.episodes, n, ("quality", "availability"))
                + columns(unjudged, n, "outage", [f"{when(pts[i].slot)}: {pts[i].errors} of {pts[i].samples} "
                                                  "samples errored, no quality verdict" for i in unjudged]))
    dense = " dense" if n > 90 else ""
    data = orjson.dumps([point_data(p) for p in pts]).decode()
    return (f'<div class="chart main{dense}" data-points="{data}">'
            f'<div class="plot"><div class="yaxis">{y_labels(steps, lo, hi, lambda v: pct(v, digits))}</div>'
            f'{overlays}{svg(body)}<div class="cursor" hidden></div><div class="tip" hidden></div></div>'
            f'{error_strip(pts)}<div class="xaxis">{x_labels([p.slot for p in pts])}</div></div>')


def error_strip(pts: Sequence[PointView]) -> str:
    """Under the pass rate: each run's share of errored samples (API failures, not wrong answers)."""
    n = len(pts)
    if not any(p.errors for p in pts):
        return ""
    bars = "".join(f'<rect class="{"err heavy" if p.error_heavy else "err"}" x="{_f(i / n * W + W / n * 0.1)}" '
                   f'y="{_f(H - H * p.errors / p.samples)}" width="{_f(max(W / n * 0.8, 1))}" '
                   f'height="{_f(H * p.errors / p.samples)}"/>'
                   for i, p in enumerate(pts) if p.errors and p.samples)
    return f'<div class="errstrip"><span class="errlabel">errors</span>{svg(bars)}</div>'


def mini_chart(title: str, values: Sequence[float | None], fmt: Callable[[float], str], unit: str,
               episodes: Sequence[Episode], kind: str) -> str:
    """A small series (tokens, latency, cost): line, latest value, range, its drift episodes."""
    n = len(values)
    scale = value_scale(values)
    latest = next((v for v in reversed(values) if v is not None), None)
    head = (f'<figcaption><span>{e(title)}</span><b>{e(fmt(latest)) if latest is not None else "–"}</b>'
            f'</figcaption>')
    if scale is None:
        return f'<figure class="mini">{head}<p class="none">no figures yet</p></figure>'
    lo, hi = scale
    steps = [lo + (hi - lo) * 0.1, lo + (hi - lo) * 0.9]
    last = [(i, v, "dot last") for i, v in enumerate(values) if v is not None][-1:]
    body = gridlines(steps, lo, hi) + polyline(values, lo, hi, "line") + dots(n, last, lo, hi)
    data = "[" + ",".join(f"{v:.4g}" if v is not None and math.isfinite(v) else "null" for v in values) + "]"
    return (f'<figure class="mini">{head}<div class="chart small" data-values="{data}" data-unit="{unit}">'
            f'<div class="plot"><div class="yaxis">{y_labels(steps, lo, hi, fmt)}</div>{spans(episodes, n, (kind,))}'
            f'{svg(body)}<div class="cursor" hidden></div><div class="tip" hidden></div></div>'
            f'</div></figure>')


def number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def money(v: float) -> str:
    return f"${v:.2f}" if v >= 1 else f"${v:.4f}" if v >= 0.001 else f"${v:.2g}"


def millis(v: float) -> str:
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def small_charts(s: SeriesView) -> str:
    pts = s.points
    return ('<div class="minis">'
            + mini_chart("output tokens per answer", [p.tokens_per_answer for p in pts], number, "tokens", s.episodes,
                         "drift:tokens")
            + mini_chart("p50 latency", [p.latency_p50_ms for p in pts], millis, "ms", s.episodes, "drift:latency")
            + mini_chart("cost per run", [p.cost for p in pts], money, "usd", [], "")
            + '</div>')
