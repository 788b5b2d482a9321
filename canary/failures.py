"""`canary failures`: which cases broke, since when, and what the model answered.

For each series of a model: its latest completed run pooled with its confirmation run (or
the run given, or every run since a date, pooled). A case is failing when any of its
answered samples failed. Per failing case: failed of answered samples (and errors), its
pass rate over the baseline window detection used (`detect.baseline` over the series'
points, per case), whether it is *newly* failing (it passed in the baseline) or has been
failing all along, its latest failed check in words, the start of that answer, and the
request ids to hand the provider. Newly failing cases come first.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from . import detect, series
from .caselevel import standing
from .config import Config
from .detect import params_of as detection_params
from .errors import UsageError
from .series import Point

if TYPE_CHECKING:
    from .reads import SeriesReads

ANSWER_CHARS = 100  # the start of an answer, on one line
MAX_REQUEST_IDS = 5

# how a failing case stood in its baseline, in the order they are listed
STANDINGS = {"newly": "newly failing", "no_baseline": "no baseline yet", "often": "often failing",
             "always": "always failing"}


def case_rates(runs: list[detect.RunPoint]) -> dict[str, tuple[int, int]]:
    """Per case, (passed, answered) pooled over runs (a baseline window)."""
    return detect.pool(*runs).cases if runs else {}


def standings(points: list[Point], params: detect.DetectionParams) -> dict[str, tuple[str, float | None]]:
    """Each case failing in a series' latest point: (standing, pass rate in the baseline), from
    the points alone (no database): what the report marks in its case grid."""
    if not points:
        return {}
    today = points[-1].point
    rates = case_rates(detect.baseline([p.point for p in points[:-1]], today, params))
    out = {}
    for case, (passed, answered) in today.cases.items():
        if answered > passed:
            bp, ba = rates.get(case, (0, 0))
            out[case] = (standing(bp, ba), bp / ba if ba else None)
    return out


def one_line(text: str, limit: int = ANSWER_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def failed_checks(turns: list[dict]) -> list[str]:
    """Every failed check of a sample in words, `turn N:` first when the case has several turns."""
    out = []
    for t, turn in enumerate(turns):
        for v in turn.get("verdicts", []):
            if not v.get("passed"):
                prefix = f"turn {t + 1}: " if len(turns) > 1 else ""
                out.append(f"{prefix}{v['type']}: {v['explanation']}")
    return out


def failing_turn(turns: list[dict]) -> int:
    """The index of the first turn with a failed check (the last turn if none is marked)."""
    return next((t for t, turn in enumerate(turns) if any(not v.get("passed") for v in turn.get("verdicts", []))),
                max(len(turns) - 1, 0))


def answer_of(turn: dict) -> str:
    """What the model answered in a turn: its text, or the tool calls it made when it wrote none."""
    text = (turn.get("text") or "").strip()
    if text:
        return text
    calls = turn.get("tool_calls") or []
    if calls:
        return "called " + ", ".join(f"{c.get('name')}({_args(c.get('arguments'))})" for c in calls)
    return "(empty answer)"


def _args(arguments) -> str:
    if not isinstance(arguments, dict):
        return ""
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in arguments.items())


@dataclass
class CaseFailure:
    case: str
    failed: int  # failed samples now
    answered: int
    errors: int
    baseline_passed: int
    baseline_answered: int
    standing: str  # newly | often | always | no_baseline
    check: str  # the latest failing sample's first failed check, in words
    answer: str  # the start of that sample's answer, one line
    request_ids: list[str] = field(default_factory=list)

    @property
    def baseline_rate(self) -> float | None:
        return self.baseline_passed / self.baseline_answered if self.baseline_answered else None

    def as_dict(self) -> dict:
        return {**asdict(self), "baseline_rate": self.baseline_rate, "standing_label": STANDINGS[self.standing]}


@dataclass
class SeriesFailures:
    model: str
    suite: str
    run_ids: list[int]
    slots: list[datetime]  # the slots of the runs looked at (several with --since)
    confirmed: bool  # a run was pooled with its confirmation run
    passed: int
    answered: int
    errors: int
    baseline_runs: int
    cases: list[CaseFailure]
    note: str = ""  # why there is no baseline, or what was left out

    @property
    def newly(self) -> list[CaseFailure]:
        return [c for c in self.cases if c.standing == "newly"]

    def as_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "cases"},
                "cases": [c.as_dict() for c in self.cases]}


def series_failures(store: SeriesReads, config: Config, model: str, suite: str, *, run_id: int | None = None,
                    since: datetime | None = None, points: list[Point] | None = None) -> SeriesFailures | None:
    """The failing cases of one series: its latest point, the point holding `run_id`, or the
    points since `since` pooled (`points`: the series, when the caller has read it already).
    None when the series has nothing to look at. One point reads only what its baseline needs."""
    params = detection_params(config.detection)
    note = ""
    if since is None and points is None:
        found = series.around(store, model, suite, params, run_id)
        if found is None:
            return _outside_series(store, model, suite, run_id) if run_id is not None else None
        history, target = found
        targets = [target]
    else:
        points = series.points(store, model, suite) if points is None else points
        if run_id is not None:
            idx = next((i for i, p in enumerate(points) if run_id in p.run_ids), None)
            if idx is None:
                return _outside_series(store, model, suite, run_id)
            targets, history = [points[idx]], points[:idx]
        elif since is not None:
            later = [i for i, p in enumerate(points) if p.slot >= since]
            if not later:
                return None
            history = points[:later[0]]
            targets = [points[i] for i in later]
            version = targets[-1].point.suite_version
            if any(p.point.suite_version != version for p in targets):
                targets = [p for p in targets if p.point.suite_version == version]
                note = "runs of an earlier version of the suite left out"
        else:
            if not points:
                return None
            targets, history = points[-1:], points[:-1]
    today = detect.pool(*(p.point for p in targets))
    base = detect.baseline([p.point for p in history], today, params)
    if not base:
        note = note or "no baseline runs yet (a new series, a changed suite, or right after `canary ack`)"
    return _explain(store, model, suite, targets, today, base, note)


def _outside_series(store: SeriesReads, model: str, suite: str, run_id: int) -> SeriesFailures:
    """A run that is not a point of the series (before the last ack, unfinished): no baseline."""
    row = store.series_run(run_id)
    if row is None or row.model != model or row.suite != suite:
        raise UsageError(f"run {run_id} is not a run of {model} on {suite} (see `canary history`)")
    point = Point([row.id], row.slot, detect.RunPoint(row.passed, row.passed + row.failed,
                                                        row.passed + row.failed + row.errors, row.suite_version),
                  row.errors, row.output_tokens, row.latency_p50_ms, row.reported_model)
    note = f"run {run_id} ({row.kind}, {row.status}) is outside the series' baseline history: no baseline"
    return _explain(store, model, suite, [point], point.point, [], note)


def _explain(store: SeriesReads, model: str, suite: str, targets: list[Point], today: detect.RunPoint,
             base: list[detect.RunPoint], note: str) -> SeriesFailures:
    run_ids = [i for p in targets for i in p.run_ids]
    counts: dict[str, list[int]] = {}  # case -> [passed, failed, errors] over the runs looked at
    for cases in store.case_counts(run_ids).values():
        for case, n in cases.items():
            c = counts.setdefault(case, [0, 0, 0])
            c[0], c[1], c[2] = c[0] + n.passed, c[1] + n.failed, c[2] + n.errors
    rates = case_rates(base)
    latest: dict[str, dict] = {}
    for s in store.failed_samples(run_ids):  # newest run first
        entry = latest.setdefault(s.case_id, {"turns": s.turns, "request_ids": []})
        if s.request_id and len(entry["request_ids"]) < MAX_REQUEST_IDS:
            entry["request_ids"].append(s.request_id)
    failing = []
    for case, (passed, failed, errors) in counts.items():
        if not failed:
            continue
        turns = latest.get(case, {}).get("turns") or []
        checks = failed_checks(turns)
        bp, ba = rates.get(case, (0, 0))
        failing.append(CaseFailure(
            case, failed, passed + failed, errors, bp, ba, standing(bp, ba),
            checks[0] if checks else "no failed check was recorded",
            one_line(answer_of(turns[failing_turn(turns)])) if turns else "",
            latest.get(case, {}).get("request_ids", [])))
    order = list(STANDINGS)
    failing.sort(key=lambda c: (order.index(c.standing), -c.failed / c.answered, c.case))
    return SeriesFailures(model, suite, run_ids, [p.slot for p in targets], any(len(p.run_ids) > 1 for p in targets),
                          today.passed, today.answered, sum(p.errors for p in targets), len(base), failing, note)


def model_failures(store: SeriesReads, config: Config, model: str, *, suite: str | None = None,
                   run_id: int | None = None, since: datetime | None = None) -> list[SeriesFailures]:
    """`canary failures`: every series of a model (or the one suite, or the run's), latest run by default."""
    stored = {(r.model, r.suite) for r in store.latest_runs()}
    if run_id is not None:
        row = store.series_run(run_id)
        if row is None or row.model != model:
            raise UsageError(f"run {run_id} is not a run of {model} (see `canary history`)")
        if suite is not None and suite != row.suite:
            raise UsageError(f"run {run_id} is a run of suite {row.suite}, not {suite}")
        suites = [row.suite]
    else:
        suites = sorted(s for m, s in stored if m == model and (suite is None or s == suite))
    found = [series_failures(store, config, model, s, run_id=run_id, since=since) for s in suites]
    return [f for f in found if f is not None]


def breached(store: SeriesReads, config: Config, assessments) -> list[SeriesFailures]:
    """The failing cases of every series whose quality verdict was a breach (`canary run`)."""
    out = []
    for a in assessments:
        if a.quality.status == "breach":
            found = series_failures(store, config, a.model, a.suite, run_id=a.today.run_ids[0])
            if found is not None:
                out.append(found)
    return out
