"""`canary report` and the daemon's `/`: one self-contained page drawn from `report_view`.

No network (CSS, SVG and a little vanilla JS inline), no SQL, every inserted value escaped.
Per series: the pass-rate chart with its band, episodes and error-heavy runs, the figures
beside it, the small charts (tokens, latency, cost), and the case x run grid whose rows open
the latest failing answer next to the reference. The charts are in `report_charts`.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from importlib import resources
from itertools import groupby
from typing import TYPE_CHECKING

from . import report_view
from .config import Config
from .report_charts import day, e, epoch_minutes, pass_rate_chart, pct, short, small_charts, when, x_labels
from .report_view import CaseGrid, CaseRow, ReportView, SeriesView

if TYPE_CHECKING:
    from .reads import SeriesReads

STATES = {  # state -> (badge class, words)
    "alert": ("bad", "alert open"), "breach": ("bad", "below the floor"), "ok": ("good", "inside the band"),
    "forming": ("quiet", "baseline forming"), "no_verdict": ("warn", "no verdict: mostly errors"),
    "no_runs": ("quiet", "no runs yet"),
}
METHODS = {"sigma": "expected − {sigma:g} sd, case by case", "sigma_run": "mean − {sigma:g} sd of the runs",
           "cusum": "CUSUM", "ewma": "EWMA", "binomial": "binomial test"}


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    return (resources.files("canary") / name).read_text(encoding="utf-8")


def render_report(store: SeriesReads, config: Config, suites: dict, now: datetime) -> str:
    """The page for the database's current state (what `canary report` writes and `/` serves)."""
    extra = ""
    if any(m.fingerprint for m in config.models):  # the probes' code is loaded only when some model has one
        from .fingerprint.views import report_section
        extra = report_section(store, config, now)
    return render(report_view.build(store, config, suites, now), extra=extra)


def render(view: ReportView, extra: str = "") -> str:
    rule = METHODS[view.method].format(sigma=view.sigma)
    confirm = ", a breach confirmed by a second run" if view.confirm else ""
    sections = "".join(series_section(s, view) for s in view.series) or \
        '<p class="empty">No model is configured yet.</p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>canary report</title><style>{asset("report.css")}</style></head><body>'
        '<header><h1>canary report</h1>'
        f'<p class="meta">{e(when(view.generated))} UTC · alert floor: {e(rule)} over the last {view.window} runs'
        f'{e(confirm)} · times in UTC</p></header>'
        f'{overview(view)}{legend()}<main>{sections}{extra}</main>'
        f'<script>{asset("report.js")}</script></body></html>')


def overview(view: ReportView) -> str:
    chips = []
    for s in view.series:
        cls, words = STATES[s.state]
        rate = pct(s.latest.rate) if s.latest and s.latest.rate is not None else "–"
        chips.append(f'<a class="chip {cls}" href="#{e(s.anchor)}"><i></i><span>{e(s.model)} · {e(s.suite)}</span>'
                     f'<b>{e(rate)}</b><em>{e(words)}</em></a>')
    return f'<nav class="overview" aria-label="series">{"".join(chips)}</nav>'


def legend() -> str:
    return ('<details class="legend"><summary>How to read the charts</summary><ul>'
            '<li><i class="k rate"></i>pass rate of the answered samples, one dot a run (a run and its '
            'confirmation run are one dot)</li>'
            '<li><i class="k band"></i>the band: the expected pass rate (dashed: each case at its own baseline '
            'rate) and the alert floor (lower edge); '
            'a run below the floor is a <i class="k breach"></i>breach</li>'
            '<li><i class="k ep"></i>an alert episode, from the run that opened it to the run that closed it</li>'
            '<li><i class="k outage"></i>a run with too many API errors for a quality verdict; '
            '<i class="k halo"></i>a judged run with many errors; the strip under a chart is each run\'s share '
            'of errored samples (errors are never counted as wrong answers)</li>'
            '<li>case grid: one row a case that failed or errored, one column a run; colour = share of its '
            'samples that passed '
            + "".join(f'<i class="k c{b}"></i>' for b in range(5)) +
            ' (100% to 0%), <i class="k cE"></i>only errors. Click a row for its latest failing answer.</li>'
            '</ul></details>')


def series_section(s: SeriesView, view: ReportView) -> str:
    cls, words = STATES[s.state]
    head = (f'<h2><span>{e(s.model)}</span> · <span>{e(s.suite)}</span> '
            f'<span class="badge {cls}">{e(words)}</span></h2>')
    if not s.points:
        return (f'<section class="series" id="{e(s.anchor)}">{head}<p class="empty">No completed run yet'
                f'{"; next run " + e(when(s.next_run)) if s.next_run else ""}.</p></section>')
    return (f'<section class="series" id="{e(s.anchor)}" data-t="{epoch_minutes([p.slot for p in s.points])}">{head}'
            f'<div class="top">{pass_rate_chart(s, view)}{stats(s, view)}</div>'
            f'{small_charts(s)}{case_grid(s.grid) if s.grid else ""}</section>')


def stats(s: SeriesView, view: ReportView) -> str:
    p = s.latest
    cls, words = STATES[s.state]
    rows = [("expected", pct(p.mean)), ("alert floor", pct(p.lower))]  # the baseline mean, case by case
    if p.errors:
        rows.append(("errors", f"{p.errors} of {p.samples} samples"))
    rows += [("state", words)]
    if s.open_alerts:
        rows.append(("open alerts", ", ".join(s.open_alerts)))
    last = short(s.last_run, view.generated) + (
        "" if s.last_status in (None, "complete") else f" ({s.last_status.replace('_', ' ')})")
    rows += [("last run", last), ("next run", short(s.next_run, view.generated))]
    big = pct(p.rate) if p.rate is not None else "–"
    sub = (f"{p.passed} of {p.answered} answered samples passed" if p.answered else "no sample answered") + \
        (" (with its confirmation run)" if p.confirmed else "")
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows)
    return (f'<aside class="stats {cls}"><div class="big">{e(big)}</div><div class="sub">{e(sub)}</div>'
            f'<dl>{items}</dl></aside>')


# --- the case grid -------------------------------------------------------------------------------------

def bucket(cell: tuple[int, int] | None) -> str:
    """The colour class of a grid cell: c0 (all passed) to c4 (under a quarter), cE only errors, "" not run."""
    if cell is None:
        return ""
    passed, answered = cell
    if not answered:
        return "cE"
    share = passed / answered
    return "c0" if share == 1 else "c1" if share >= 0.75 else "c2" if share >= 0.5 else "c3" if share >= 0.25 else "c4"


@lru_cache(maxsize=4096)
def _cell(cell: tuple[int, int] | None) -> tuple[str, str]:
    """(colour class, "passed/answered") of a cell: a grid repeats a few dozen kinds of cell."""
    return bucket(cell), "" if cell is None else f"{cell[0]}/{cell[1]}"


def strip(cells: list[tuple[int, int] | None]) -> str:
    """A row of cells as one SVG path per colour, equal neighbours merged (a steady case costs one)."""
    n, shapes, i = len(cells), {}, 0
    looks = list(map(_cell, cells))
    for cls, same in groupby([look[0] for look in looks]):
        width = len(list(same))
        if cls:
            shapes.setdefault(cls, []).append(f"M{i} 0h{width}v1h-{width}z")
        i += width
    data = ",".join([look[1] for look in looks])
    paths = "".join([f'<path class="{cls}" d="{"".join(d)}"/>' for cls, d in sorted(shapes.items())])
    return f'<svg class="cells" viewBox="0 0 {n} 1" preserveAspectRatio="none" data-cells="{data}">{paths}</svg>'


def case_grid(g: CaseGrid) -> str:
    n = len(g.columns)
    slots = e(",".join(f"{s:%d %b %H:%M}" for s in g.columns))
    rows = "".join(case_row(r) for r in g.rows)
    notes = []
    if g.clean:
        notes.append(f"{g.clean} more case{'s' if g.clean != 1 else ''} passed every sample of these runs")
    if g.left_out:
        notes.append(f"the grid shows the last {n} runs; the {g.left_out} before them are in the charts only")
    if not g.rows:
        rows = '<p class="empty">Every case passed every sample of these runs.</p>'
    return (f'<div class="grid" style="--n:{n}" data-slots="{slots}"><h3>Cases × runs</h3>'
            f'<div class="ghead"><span class="cid">case</span><div class="xaxis">{x_labels(g.columns)}</div>'
            f'<span class="cnow">latest</span></div>{rows}'
            + (f'<p class="note">{e("; ".join(notes))}.</p>' if notes else "") + '</div>')


def case_row(r: CaseRow) -> str:
    last = next((c for c in reversed(r.cells) if c is not None), None)
    now = "–" if last is None else f"{last[0]}/{last[1]}" if last[1] else "errors"
    mark = f' <mark class="{e(r.standing)}">{e(r.standing_label)}</mark>' if r.standing else ""
    label = f'<span class="cid" title="{e(r.case)}"><code>{e(r.case)}</code>{mark}</span>'
    cells = f'<span class="strip">{strip(r.cells)}</span><span class="cnow">{e(now)}</span>'
    if r.failure is None:
        return f'<div class="crow">{label}{cells}</div>'
    return f'<details class="crow"><summary>{label}{cells}</summary>{panel(r)}</details>'


def panel(r: CaseRow) -> str:
    f = r.failure
    turn = f" · turn {f.turn + 1} of {f.turns}" if f.turns > 1 else ""
    baseline = f" · {pct(r.baseline_rate)} passed in the baseline" if r.baseline_rate is not None else ""
    checks = "".join(f"<li>{e(c)}</li>" for c in f.checks) or "<li>no failed check was recorded</li>"
    ref = (f'<pre>{e(f.reference)}</pre>' if f.reference is not None
           else '<p class="empty">not in the loaded suite (the case or its reference changed)</p>')
    rid = f'<p class="rid">request id <code>{e(f.request_id)}</code></p>' if f.request_id else ""
    prompt = f'<p class="prompt"><b>prompt</b> {e(f.prompt)}</p>' if f.prompt else ""
    return (f'<div class="panel"><p class="when">latest failing answer: {e(day(f.slot))} {f.slot:%H:%M}, '
            f'sample {f.sample + 1}{e(turn)}{e(baseline)}</p>{prompt}'
            f'<div class="pair"><div><h4>answer</h4><pre>{e(f.answer)}</pre></div>'
            f'<div><h4>reference</h4>{ref}</div></div>'
            f'<h4>failed checks</h4><ul class="checks">{checks}</ul>{rid}</div>')
