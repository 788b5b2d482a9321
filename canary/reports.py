"""Read-only views for people and scripts: status per series, a series with its band."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from . import alerts, detect, power
from .config import Config, ModelConfig, cron_trigger
from .fingerprint import SUITE as FINGERPRINT
from .monitor import detection_params, series
from .store import Store


def next_run(config: Config, model: ModelConfig, now: datetime) -> datetime | None:
    """The next scheduled slot of a model, naive UTC."""
    trigger = cron_trigger(model.schedule or config.schedule, ZoneInfo(config.timezone))
    fire = trigger.get_next_fire_time(None, now.replace(tzinfo=timezone.utc))
    return fire.astimezone(timezone.utc).replace(tzinfo=None) if fire else None


def history(store: Store, config: Config, model: str, suite: str, points: list | None = None, *,
            last: int | None = None) -> list[dict]:
    """Every point of the series (since the last ack), or the `last` ones, with the band it was
    judged against (case-level verdicts cost a pooling of the baseline each: status asks for
    one). `points`: the series' `monitor.series`, when the caller has read it already."""
    if suite == FINGERPRINT:
        from .fingerprint.views import history as fingerprint_history
        return fingerprint_history(store, config, model)
    points = series(store, model, suite) if points is None else points
    params = detection_params(config.detection)
    out = []
    for i, p in enumerate(points):
        if last is not None and i < len(points) - last:
            continue
        v = detect.judge([q.point for q in points[:i]], p.point, params)
        out.append({
            "slot": p.slot, "run_ids": p.run_ids, "suite_version": p.point.suite_version,
            "passed": p.point.passed, "answered": p.point.answered, "errors": p.errors,
            "pass_rate": p.point.passed / p.point.answered if p.point.answered else None,
            "mean": v.mean, "lower": v.lower, "verdict": v.status, "check": v.check, "in_alert": p.point.in_alert,
            "output_tokens_per_answer": p.tokens_per_answer, "latency_p50_ms": p.latency_p50_ms,
            "reported_model": p.reported_model,
        })
    return out


def status(store: Store, config: Config, suites: dict, now: datetime) -> list[dict]:
    """Per configured model and suite: last run, pass rate, band, alert state, next run."""
    latest = {(r.model, r.suite): r for r in store.latest_runs()}
    open_by_series: dict[tuple, list[str]] = {}
    for a in alerts.open_alerts(store):
        open_by_series.setdefault((a.model, a.suite), []).append(a.kind)
    sensitivity = store.sensitivities()
    params = detection_params(config.detection)
    rows = []
    for m in config.models:
        upcoming = next_run(config, m, now)
        for name in (m.suites if m.suites is not None else sorted(suites)):
            last = latest.get((m.name, name))
            points = history(store, config, m.name, name, last=1)
            band = points[-1] if points else {}
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
    from .fingerprint.views import status_rows
    return rows + status_rows(store, config, lambda c, m: next_run(c, m, now))
