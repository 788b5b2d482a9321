"""One (model, suite) series: its points, read from the store, and each point's quality verdict.

A point is a scheduled or manual run pooled with its confirmation run; the series starts at
the last `canary ack` (its run included). Reads cost what the question needs, whatever the
length of the history:
- `points`: the whole series (history, the report), per-case counts only when asked for.
- `around`: the point holding a run, or the latest, with only the part of the series before
  it that its judgement reads: the runs just before it and the reference after the ack,
  read from both ends of the series through its index and widened only while a part is
  missing (many runs in an alert, errors, another suite version).
- `verdicts`: the verdict each point was judged with. monitor keeps it on the point's run
  when it judges it (runs.verdict); a point without one (judged before verdicts were kept,
  or imported) is judged now from its context, in one pass over the series.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Sequence

from . import detect, episode
from .reads import passed_answered

if TYPE_CHECKING:
    from .reads import SeriesReads

HEAD = 32  # runs read from each end of a series before widening


@dataclass
class Point:
    """One day of one series: a run, pooled with its confirmation run if it had one."""

    run_ids: list[int]
    slot: datetime
    point: detect.RunPoint
    errors: int
    output_tokens: int
    latency_p50_ms: float | None
    reported_model: str | None
    cost: float | None = None  # USD, the run's and its confirmation run's (None: no price)
    verdict: dict | None = None  # what it was judged with (runs.verdict of its first run)

    @property
    def tokens_per_answer(self) -> float | None:
        return self.output_tokens / self.point.answered if self.point.answered else None


def build(rows: Sequence, intervals: list[tuple[int, int | None]]) -> list[Point]:
    """Points from complete runs (oldest first, as `SeriesReads.series_runs` reads them: the columns
    of POINT_COLUMNS, then `cases` if asked for): each confirmation run pooled into its run.
    A row is unpacked as a tuple: a year of points reads each field once, by position."""
    points: list[Point] = []
    by_slot: dict[datetime, Point] = {}
    for run_id, slot, kind, version, passed, failed, errors, in_alert, output_tokens, latency, reported, cost, \
            verdict, *counts in rows:
        # the run that opened an alert and those made while it was open: never in a baseline
        # (a regression's first day would otherwise inflate the sd for `window` days)
        in_alert = in_alert or (bool(intervals) and episode.inside(run_id, intervals))
        cases = passed_answered(counts[0]) if counts and counts[0] else {}
        answered = passed + failed
        run_point = detect.RunPoint(passed, answered, answered + errors, version, in_alert, cases)
        if kind == "confirm":  # pooled into its run, whose alert state it shares
            parent = by_slot.get(slot)
            if parent is not None:
                parent.run_ids.append(run_id)
                parent.point = detect.pool(parent.point, replace(run_point, in_alert=parent.point.in_alert))
                parent.errors += errors
                parent.output_tokens += output_tokens
                if cost is not None:
                    parent.cost = (parent.cost or 0.0) + cost
            continue
        point = by_slot[slot] = Point([run_id], slot, run_point, errors, output_tokens, latency, reported, cost, verdict)
        points.append(point)
    return points


def points(store: SeriesReads, model: str, suite: str, *, cases: bool = True) -> list[Point]:
    """The whole series since the last ack, oldest first (`cases=False`: without the per-case
    counts, which only judging and the case grid read)."""
    rows, _ = store.series_runs(model, suite, since=store.last_ack(model, suite), cases=cases)
    return build(rows, store.alert_intervals(model, suite, "quality"))


def last(store: SeriesReads, model: str, suite: str) -> Point | None:
    """The series' latest point alone, without per-case counts: two rows at most."""
    rows, _ = store.series_runs(model, suite, since=store.last_ack(model, suite), last=2, cases=False)
    pts = build(rows, store.alert_intervals(model, suite, "quality"))
    return pts[-1] if pts else None


def with_cases(store: SeriesReads, pts: list[Point]) -> list[Point]:
    """The points with their per-case counts (read for those points only)."""
    counts = store.case_results(i for p in pts for i in p.run_ids)
    out = []
    for p in pts:
        per_run = [counts.get(i, {}) for i in p.run_ids]
        cases = per_run[0] if len(per_run) == 1 else detect.pool_cases(per_run)
        out.append(replace(p, point=replace(p.point, cases=cases)))
    return out


def around(store: SeriesReads, model: str, suite: str, params: detect.DetectionParams,
           run_id: int | None = None) -> tuple[list[Point], Point] | None:
    """(the points before it that its judgement reads, the point): the point holding `run_id`,
    or the series' latest. None when there is no such point in the series.

    Read from the two ends of the series: the runs just before the point (widened until they
    hold the rolling baseline, the slide guard's recent runs and the drift bands' runs: see
    `_tail_holds`), and, when those do not reach back to the series' start, its reference
    (the first `window` eligible runs of the point's suite version after the ack)."""
    since = store.last_ack(model, suite)
    intervals = store.alert_intervals(model, suite, "quality")
    until = None
    if run_id is not None:
        row = store.series_run(run_id)
        if row is None or row.model != model or row.suite != suite or (since is not None and run_id < since):
            return None
        until = row.slot
    n = HEAD
    while True:
        rows, more = store.series_runs(model, suite, since=since, until=until, last=n)
        pts = build(rows, intervals)
        today = next((p for p in reversed(pts) if run_id is None or run_id in p.run_ids), None)
        if today is None:
            return None
        history = pts[:pts.index(today)]
        if not more or _tail_holds(history, today, params):
            break
        n *= 4
    if more:  # the series' start is further back: its reference from the other end
        start = history[0].slot if history else today.slot
        history = [p for p in _reference(store, model, suite, since, today, params, intervals) if p.slot < start] \
            + history
    return history, today


def _tail_holds(history: list[Point], today: Point, params: detect.DetectionParams) -> bool:
    """Whether the runs before today hold all that today's judgement reads besides the
    reference: the last `window` eligible runs out of an alert (the rolling baseline), the
    last `window` answered in full (the drift bands), the last `window` of today's suite
    version (the reported model id), and enough for the slide guard's recent level. cusum
    and ewma read every run since their reference: never."""
    if params.method in ("cusum", "ewma"):
        return False
    w, version = params.window, today.point.suite_version
    same = base = clean = 0
    recent_runs, recent_answered = 1, today.point.answered
    for p in reversed(history):
        r = p.point
        if r.suite_version != version:
            continue
        same += 1
        if detect.answered_enough(r, params.min_answered_share):
            base += not r.in_alert
            clean += r.samples == r.answered
            recent_runs += 1
            recent_answered += r.answered
        if same >= w and base >= w and clean >= w and recent_runs >= params.slide_runs \
                and recent_answered >= params.slide_samples:
            return True
    return False


def _reference(store: SeriesReads, model: str, suite: str, since: int | None, today: Point,
               params: detect.DetectionParams, intervals) -> list[Point]:
    """The series' first points of today's suite version, up to its reference's last run."""
    n = HEAD
    while True:
        rows, more = store.series_runs(model, suite, since=since, version=today.point.suite_version, first=n)
        pts = [p for p in build(rows, intervals) if p.slot < today.slot]
        eligible = [i for i, p in enumerate(pts) if not p.point.in_alert
                    and detect.answered_enough(p.point, params.min_answered_share)]
        if len(eligible) >= params.window or not more:
            return pts[:eligible[params.window - 1] + 1] if len(eligible) >= params.window else pts
        n *= 4


def verdicts(pts: list[Point], params: detect.DetectionParams) -> tuple[list[detect.Verdict], dict[int, dict]]:
    """Each point's verdict, and those judged now ({first run id: stored form}) for the caller to
    keep. A kept verdict is read; a point without one is judged from its context (one pass:
    the eligible runs of each suite version are collected as the series is walked)."""
    out: list[detect.Verdict] = []
    judged: dict[int, dict] = {}
    eligible: dict[str, list[int]] = {}
    runs = [p.point for p in pts]
    for i, p in enumerate(pts):
        if p.verdict is not None:
            out.append(detect.Verdict.from_stored(p.verdict))
        else:
            same = eligible.get(p.point.suite_version, [])
            idx, _ = detect.context(runs, p.point, params, same=same)
            v = detect.judge([runs[j] for j in idx], p.point, params)
            out.append(v)
            judged[p.run_ids[0]] = v.stored()
        if detect.answered_enough(p.point, params.min_answered_share):
            eligible.setdefault(p.point.suite_version, []).append(i)
    return out, judged
