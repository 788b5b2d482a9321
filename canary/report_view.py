"""The report's view model: what `canary report` and the daemon's `/` draw. No HTML, no SQL.

Built once per page from the read functions the commands share: per series its points
with the verdict each was judged with (`reports.judged_points` over `series.points`), its alert
episodes, the latest figures and state shown beside its chart, and a case x run grid of the
most recent runs, each failing case with its latest failing answer, the reference and the
failed checks. `report_html` renders it; nothing here knows about markup.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from typing import TYPE_CHECKING

from . import detect, series
from .config import Config
from .detect import params_of as detection_params
from .failures import STANDINGS, answer_of, failed_checks, failing_turn, standings
from .messages import KIND_TITLES, anchor
from .reports import judged_points, next_run
from .suites import Case, Suite

if TYPE_CHECKING:
    from .reads import SeriesReads

GRID_RUNS = 60  # the case grid shows this many most recent runs; the charts show every run
ANSWER_CHARS = 1500  # an answer or a reference beyond this is cut (the page stays light)
PROMPT_CHARS = 400


@dataclass
class PointView:
    """One point of a series: a run, pooled with its confirmation run if it had one."""

    slot: datetime
    run_ids: list[int]
    rate: float | None  # pass rate of the answered samples
    passed: int
    answered: int
    errors: int
    mean: float | None  # the baseline it was judged against
    lower: float | None  # the alert floor
    verdict: str  # breach | ok | no_verdict
    in_alert: bool
    error_heavy: bool  # errors at the availability threshold, or too few answers for a verdict
    judged: bool  # answered enough for a quality verdict
    tokens_per_answer: float | None
    latency_p50_ms: float | None
    cost: float | None

    @property
    def samples(self) -> int:
        return self.answered + self.errors

    @property
    def confirmed(self) -> bool:
        return len(self.run_ids) > 1

    @cached_property  # the charts read it three times a point
    def upper(self) -> float | None:
        """The top of the band drawn around the mean (mirror of the floor, at most 100%)."""
        if self.mean is None or self.lower is None:
            return None
        return min(1.0, 2 * self.mean - self.lower)


@dataclass
class Episode:
    """One alert of a series, as a span of its points (end None: still open)."""

    kind: str
    title: str
    start: int
    end: int | None
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None


@dataclass
class Failure:
    """A case's latest failing sample in the grid's runs."""

    slot: datetime
    sample: int
    turn: int  # 0-based index of the first turn with a failed check
    turns: int
    prompt: str
    answer: str
    reference: str | None  # None when the loaded suite no longer has this case or turn
    checks: list[str]
    request_id: str | None


@dataclass
class CaseRow:
    case: str
    cells: list[tuple[int, int] | None]  # per grid column: (passed, answered); None: not run
    standing: str | None  # failing in the latest run: newly | often | always | no_baseline
    baseline_rate: float | None
    failure: Failure | None

    @property
    def standing_label(self) -> str | None:
        return STANDINGS[self.standing] if self.standing else None


@dataclass
class CaseGrid:
    columns: list[datetime]  # the slots of the grid's runs, oldest first
    rows: list[CaseRow]  # cases that failed or errored in at least one of these runs
    clean: int  # cases that passed every sample of these runs (counted, not drawn)
    left_out: int  # older runs not in the grid


@dataclass
class SeriesView:
    model: str
    suite: str
    anchor: str
    points: list[PointView]
    episodes: list[Episode]
    open_alerts: list[str]  # titles of the series' open alerts
    state: str  # alert | breach | ok | forming | no_verdict | no_runs
    last_run: datetime | None
    last_status: str | None
    next_run: datetime | None
    grid: CaseGrid | None

    @property
    def latest(self) -> PointView | None:
        return self.points[-1] if self.points else None


@dataclass
class ReportView:
    generated: datetime
    method: str
    sigma: float
    window: int
    confirm: bool
    error_rate: float
    series: list[SeriesView] = field(default_factory=list)


def build(store: SeriesReads, config: Config, suites: dict[str, Suite], now: datetime) -> ReportView:
    """The whole report: every configured (model, suite), in config order."""
    view = ReportView(now, config.detection.method, config.detection.sigma, config.detection.window,
                      config.detection.confirm, config.alerts.error_rate)
    latest = {(r.model, r.suite): r for r in store.latest_runs()}
    episodes: dict[tuple[str, str], list] = {}
    for row in store.alert_episodes():
        episodes.setdefault((row.model, row.suite), []).append(row)
    for m in config.models:
        upcoming = next_run(config, m, now)
        for name in (m.suites if m.suites is not None else sorted(suites)):
            view.series.append(build_series(store, config, m.name, name, suites.get(name),
                                            latest.get((m.name, name)), episodes.get((m.name, name), []), upcoming))
    return view


def build_series(store: SeriesReads, config: Config, model: str, suite: str, loaded: Suite | None, last_run,
                 alert_rows: list, upcoming: datetime | None) -> SeriesView:
    pts = series.points(store, model, suite, cases=False)
    share, error_rate = config.detection.min_answered_share, config.alerts.error_rate
    points = []
    for p, v in judged_points(store, config, model, suite, points=pts):
        run = p.point
        judged = detect.answered_enough(run, share)
        points.append(PointView(
            p.slot, p.run_ids, run.passed / run.answered if run.answered else None, run.passed, run.answered,
            p.errors, v.mean, v.lower, v.status, run.in_alert,
            not judged or (run.samples > 0 and p.errors / run.samples >= error_rate),
            judged, p.tokens_per_answer, p.latency_p50_ms, p.cost))
    open_titles = [KIND_TITLES.get(a.kind, a.kind) for a in alert_rows if a.state == "open"]
    quality_open = any(a.state == "open" and a.kind == "quality" for a in alert_rows)
    return SeriesView(
        model, suite, anchor(model, suite), points, _episodes(alert_rows, pts), open_titles,
        _state(points, quality_open), last_run.slot if last_run else None, last_run.status if last_run else None,
        upcoming, _grid(store, config, model, suite, pts, loaded) if pts else None)


def _state(points: list[PointView], quality_open: bool) -> str:
    if quality_open:
        return "alert"
    if not points:
        return "no_runs"
    last = points[-1]
    if last.verdict in ("breach", "ok"):
        return last.verdict
    return "forming" if last.judged else "no_verdict"


def _episodes(rows: list, pts: list) -> list[Episode]:
    """Alerts as spans of points: from the run that opened one to the run that closed it."""
    where = {i: n for n, p in enumerate(pts) for i in p.run_ids}
    out = []
    for a in rows:
        if a.kind == "config_error" or not pts:
            continue
        start = where.get(a.opened_run_id)
        end = where.get(a.closed_run_id) if a.closed_run_id is not None else None
        if start is None:
            if a.closed_run_id is not None and end is None:
                continue  # wholly before the series' history (an ack since)
            start = next((n for n, p in enumerate(pts) if p.slot >= a.opened_at), None)
            if start is None:
                continue
        out.append(Episode(a.kind, KIND_TITLES.get(a.kind, a.kind), start, end, a.opened_at, a.closed_at,
                           a.closed_by))
    return out


def _grid(store: SeriesReads, config: Config, model: str, suite: str, pts: list, loaded: Suite | None) -> CaseGrid:
    """The last GRID_RUNS points, case by case (their per-case counts read for them alone)."""
    shown = series.with_cases(store, pts[-GRID_RUNS:])
    case_ids = sorted({c for p in shown for c in p.point.cases})
    params = detection_params(config.detection)
    within = len(shown) == len(pts) or len(detect.baseline(
        [p.point for p in shown[:-1]], shown[-1].point, params)) >= params.window
    if within and not detect.frozen(params):  # the latest point's baseline is among the grid's runs
        standing = standings(shown, params)
    else:
        found = series.around(store, model, suite, params)
        standing = standings(found[0] + [found[1]], params) if found else {}
    rows, clean, runs_of = [], 0, {}
    for case in case_ids:
        cells = [p.point.cases.get(case) for p in shown]
        if all(c is None or (c[1] > 0 and c[0] == c[1]) for c in cells) and case not in standing:
            clean += 1
            continue
        now, rate = standing.get(case, (None, None))
        rows.append(CaseRow(case, cells, now, rate, None))
        last = next((k for k in range(len(cells) - 1, -1, -1) if cells[k] and cells[k][0] < cells[k][1]), None)
        if last is not None:  # its latest failing answer is in that point's runs
            runs_of[case] = shown[last].run_ids
    latest = store.latest_samples(runs_of, "failed")
    cases = {c.id: c for c in loaded.cases} if loaded else {}
    slots = {i: p.slot for p in shown for i in p.run_ids}
    for r in rows:
        r.failure = _failure(latest.get(r.case), slots, cases.get(r.case))
    order = list(STANDINGS)
    rows.sort(key=lambda r: (order.index(r.standing) if r.standing else len(order),
                             -sum(1 for c in r.cells if c is not None and c[0] < c[1]), r.case))
    return CaseGrid([p.slot for p in shown], rows, clean, len(pts) - len(shown))


def _failure(sample, slots: dict[int, datetime], case: Case | None) -> Failure | None:
    if sample is None:
        return None
    turns = sample.turns or []
    t = failing_turn(turns)
    turn = turns[t] if turns else {}
    slot = slots.get(sample.run_id, sample.finished_at)
    return Failure(slot, sample.sample, t, len(turns), _cut(turn.get("user") or "", PROMPT_CHARS),
                   _cut(answer_of(turn), ANSWER_CHARS) if turns else "(no answer recorded)",
                   _reference(case, t), failed_checks(turns), sample.request_id)


def _reference(case: Case | None, turn: int) -> str | None:
    if case is None or turn >= len(case.turns) or case.turns[turn].reference is None:
        return None
    ref = case.turns[turn].reference
    calls = [answer_of({"tool_calls": [c.fields()]}) for r in ref.rounds for c in r]
    return _cut("\n".join(calls + ([ref.text] if ref.text else [])), ANSWER_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
