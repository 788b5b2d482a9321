"""Read-only views for people and scripts: status per series, a series with its band."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from . import detect, power, series
from .config import Config, ModelConfig, cron_trigger
from .detect import params_of as detection_params
from .fingerprint import SUITE as FINGERPRINT
from .series import Point

if TYPE_CHECKING:
    from .reads import SeriesReads


def next_run(config: Config, model: ModelConfig, now: datetime) -> datetime | None:
    """The next scheduled slot of a model, naive UTC."""
    trigger = cron_trigger(model.schedule or config.schedule, ZoneInfo(config.timezone))
    fire = trigger.get_next_fire_time(None, now.replace(tzinfo=timezone.utc))
    return fire.astimezone(timezone.utc).replace(tzinfo=None) if fire else None


def history(store: SeriesReads, config: Config, model: str, suite: str) -> list[dict]:
    """Every point of the series (since the last ack) with the verdict it was judged with."""
    if suite == FINGERPRINT:
        from .fingerprint.views import history as fingerprint_history
        return fingerprint_history(store, config, model)
    return [row(p, v) for p, v in judged_points(store, config, model, suite)]


def judged_points(store: SeriesReads, config: Config, model: str, suite: str,
                  points: list[Point] | None = None) -> list[tuple[Point, detect.Verdict]]:
    """Every point of a quality series with its verdict: the one monitor kept on its run, or,
    for a point without one, judged now from its context (and kept, so the next read is as
    cheap). `points`: the series, when the caller has read it."""
    params = detection_params(config.detection)
    pts = points if points is not None else series.points(store, model, suite, cases=False)
    if any(p.verdict is None for p in pts) and not any(p.point.cases for p in pts):
        pts = series.points(store, model, suite)  # judging reads the per-case counts
    verdicts, judged = series.verdicts(pts, params)
    store.keep("verdict", judged)
    return list(zip(pts, verdicts))


def row(p: Point, v: detect.Verdict) -> dict:
    return {
        "slot": p.slot, "run_ids": p.run_ids, "suite_version": p.point.suite_version,
        "passed": p.point.passed, "answered": p.point.answered, "errors": p.errors,
        "pass_rate": p.point.passed / p.point.answered if p.point.answered else None,
        "mean": v.mean, "lower": v.lower, "verdict": v.status, "check": v.check, "in_alert": p.point.in_alert,
        "output_tokens_per_answer": p.tokens_per_answer, "latency_p50_ms": p.latency_p50_ms,
        "reported_model": p.reported_model,
    }


def latest(store: SeriesReads, config: Config, model: str, suite: str) -> dict:
    """The series' latest point with its verdict, reading only what that verdict needs: the
    point's own rows when its verdict was kept, else what judging it reads."""
    point = series.last(store, model, suite)
    if point is None:
        return {}
    if point.verdict is not None:
        return row(point, detect.Verdict.from_stored(point.verdict))
    params = detection_params(config.detection)
    found = series.around(store, model, suite, params)
    if found is None:
        return {}
    history, today = found
    if today.verdict is not None:
        return row(today, detect.Verdict.from_stored(today.verdict))
    verdict = detect.judge([p.point for p in history], today.point, params)
    store.keep("verdict", {today.run_ids[0]: verdict.stored()})
    return row(today, verdict)


def status(store: SeriesReads, config: Config, suites: dict, now: datetime, *, fingerprint: bool = True) -> list[dict]:
    """Per configured model and suite: last run, pass rate, band, alert state, next run; then the
    fingerprint series' rows (`fingerprint=False`: the quality series only)."""
    latest_runs = {(r.model, r.suite): r for r in store.latest_runs()}
    open_by_series: dict[tuple, list[str]] = {}
    for a in store.open_alert_keys():
        open_by_series.setdefault((a.model, a.suite), []).append(a.kind)
    sensitivity = store.sensitivities()
    params = detection_params(config.detection)
    rows = []
    for m in config.models:
        upcoming = next_run(config, m, now)
        for name in (m.suites if m.suites is not None else sorted(suites)):
            last = latest_runs.get((m.name, name))
            band = latest(store, config, m.name, name) if last else {}
            suite = suites.get(name)
            key = suite and (m.name, name, suite.version,
                             power.settings_key(params, config.detection.confirm, m.repeat or suite.repeat))
            catches = sensitivity.get(key) if key else None
            rows.append({
                "model": m.name, "suite": name,
                "last_run": last.slot if last else None, "last_status": last.status if last else None,
                "pass_rate": band.get("pass_rate"), "passed": band.get("passed"), "answered": band.get("answered"),
                "errors": band.get("errors"), "mean": band.get("mean"), "lower": band.get("lower"),
                "verdict": band.get("verdict"), "alerts": open_by_series.get((m.name, name), []),
                # the smallest drop (points) caught within 3 runs, once simulated for this suite version
                "catches": catches.min_drop if catches else None, "catches_simulated": catches is not None,
                "next_run": upcoming,
            })
    if not fingerprint or not any(m.fingerprint for m in config.models):
        return rows
    from .fingerprint.views import status_rows
    return rows + status_rows(store, config, lambda c, m: next_run(c, m, now))


def alert_list(store: SeriesReads, limit: int = 100) -> list[dict]:
    """`canary alerts`: alerts, newest first, each with the messages that carry its events and
    their delivery state."""
    rows = store.recent_alerts(limit)
    by_alert: dict[int, list] = {}
    for m in store.alert_messages([r.id for r in rows]):
        by_alert.setdefault(m.alert_id, []).append({
            "event": m.event, "text": m.message.get("text", ""), "state": m.state, "attempts": m.attempts,
            "sent_at": m.sent_at, "next_attempt_at": m.next_attempt_at if m.state == "pending" else None,
            "last_error": m.last_error})
    return [{"id": r.id, "model": r.model, "suite": r.suite, "kind": r.kind, "state": r.state,
             "opened_at": r.opened_at, "closed_at": r.closed_at, "closed_by": r.closed_by,
             "summary": r.details.get("reason", ""), "messages": by_alert.get(r.id, [])} for r in rows]
