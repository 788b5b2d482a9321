"""After a run: judge every signal of its series, confirm a breach, open and close alerts.

`run_and_watch` is what `canary run` and every daemon job call: run the jobs, re-run once a
suite whose pass rate breached (detection.confirm), decide on the pooled samples, then open
or close alerts (quality, availability, drift, model_changed) and deliver what is due. The
decisions are canary/episode.py's (the simulations of canary/power.py make the same ones);
this module feeds them from the database and acts on them.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime

from . import alerts, caselevel, detect, episode, incidents, messages, series
from .config import Config
from .detect import params_of as detection_params
from .runner import Control, Job, RunSummary, owner_id, run_jobs, utcnow
from .series import Point
from .store import Store


DRIFT_FLOOR = 0.05  # the drift band's sd is at least 5% of the mean: a 2-sigma drift is a 10% move


@dataclass
class Assessment:
    model: str
    suite: str
    today: Point
    quality: detect.Verdict
    history: list[Point] = field(default_factory=list)  # the points before today
    params: detect.DetectionParams = field(default_factory=detect.DetectionParams)  # what judged it
    signals: dict[str, tuple[bool, dict]] = field(default_factory=dict)  # kind -> (in breach, details)


def assess(store: Store, config: Config, model: str, suite: str, run_id: int) -> Assessment | None:
    """Every signal of the series at the point holding `run_id`, judged against the part of the
    series before it that the signals read (`series.around`: bounded, whatever the history)."""
    cfg = config.detection
    params = detection_params(cfg)
    found = series.around(store, model, suite, params, run_id)
    if found is None:
        return None
    history, today = found
    quality = detect.judge([p.point for p in history], today.point, params)
    result = Assessment(model, suite, today, quality, history, params)
    same = [p for p in history if p.point.suite_version == today.point.suite_version]

    samples_n = today.point.samples
    error_rate = today.errors / samples_n if samples_n else 0.0
    breach = error_rate >= config.alerts.error_rate
    result.signals["availability"] = (breach, {
        "errors": today.errors, "samples": samples_n, "error_rate": error_rate, "threshold": config.alerts.error_rate,
        **(store.error_summary(today.run_ids) if breach else {}),  # classes, HTTP statuses, request ids
        "reason": f"{today.errors}/{samples_n} samples errored ({100 * error_rate:.1f}%, "
                  f"threshold {100 * config.alerts.error_rate:.0f}%)"})
    drifts = [("drift:tokens", cfg.drift_tokens, lambda p: p.tokens_per_answer),
              ("drift:latency", cfg.drift_latency, lambda p: p.latency_p50_ms)]
    # Errors change which cases were answered, and so the mix the averages are taken over:
    # drift is judged only on runs where every sample was answered.
    clean = [p for p in same if p.errors == 0]
    for kind, enabled, metric in drifts:
        if enabled and today.errors == 0:
            v = detect.band([metric(p) for p in clean], metric(today), cfg.sigma, cfg.window, cfg.min_history,
                            rel_floor=DRIFT_FLOOR)
            if v.status != "no_verdict":
                result.signals[kind] = (v.status == "breach", {"reason": v.reason, "value": v.rate,
                                                               "mean": v.mean, "lower": v.lower, "upper": v.upper})
    before = Counter(p.reported_model for p in same[-cfg.window:] if p.reported_model)
    if before and today.reported_model:
        usual = before.most_common(1)[0][0]
        result.signals["model_changed"] = (today.reported_model != usual, {
            "now": today.reported_model, "before": usual,
            "reason": f"the API reports {today.reported_model}, the baseline ran on {usual}"})
    return result


def explanations(store: Store, run_ids: list[int], cases: list[str]) -> dict[str, str]:
    """Per case, the first failed check of its newest failed sample, in words."""
    from .failures import failed_checks
    found = {}
    for case_id, row in store.latest_samples({c: run_ids for c in cases}, "failed").items():
        checks = failed_checks(row.turns or [])
        if checks:
            found[case_id] = checks[0][:300]
    return found


def failing_cases(store: Store, a: Assessment, limit: int = 5) -> dict:
    """Today's failing cases, newly failing first, against the runs the verdict compared with
    (the baseline; the reference when only the slow-slide guard breached): at most `limit`
    with their explanation, and counts of the rest and of the always-failing (no news)."""
    history, today = [p.point for p in a.history], a.today.point
    base = (caselevel.reference(history, today, a.params) if a.quality.check == "reference"
            else detect.baseline(history, today, a.params))
    found = caselevel.changes(base, today)
    news = [c for c in found if c.kind != "always_failing"]
    shown = news[:limit]
    why = explanations(store, a.today.run_ids, [c.case for c in shown])
    return {"failing": [{"case": c.case, "kind": c.kind, "passed": c.passed, "answered": c.answered,
                         "base_passed": c.base_passed, "base_answered": c.base_answered,
                         "explanation": why.get(c.case, "")} for c in shown],
            "more_failing": len(news) - len(shown), "always_failing": len(found) - len(news)}


def quality_details(store: Store, a: Assessment) -> dict:
    v, p = a.quality, a.today.point
    runs = [store.run(i) for i in a.today.run_ids]  # with its confirmation run: judged on both
    details = {"rate": v.rate, "passed": p.passed, "answered": p.answered, "mean": v.mean, "sd": v.sd,
               "lower": v.lower, "method": v.method, "reason": v.reason, "errors": a.today.errors,
               "confirmed": len(a.today.run_ids) > 1, "runs": [[r.passed, r.passed + r.failed] for r in runs],
               "check": v.check, **failing_cases(store, a)}
    if v.slide is not None and v.check == "reference":
        s = v.slide
        date = f"{a.history[s.reference_start].slot:%Y-%m-%d}"
        details["slide"] = {"points": s.points, "rate": s.rate, "expected": s.expected, "lower": s.lower,
                            "runs": s.runs, "reference_date": date}
        details["reason"] = f"{s.points:.0f} points below the reference of {date} (rolling window absorbed it)"
    return details


@dataclass
class Event:
    model: str
    suite: str
    kind: str
    action: str  # opened | recovered


def decide(store: Store, a: Assessment) -> list[alerts.Change]:
    """The alert events one assessment calls for: open each signal newly in breach, close each
    one back to normal (episode.transition)."""
    signals = dict(a.signals)
    open_now = {r.kind: r for r in store.open_alerts(a.model, a.suite)}
    if a.quality.status != "no_verdict":
        opening = a.quality.breach and "quality" not in open_now
        signals["quality"] = (a.quality.breach, quality_details(store, a) if opening
                              else {"reason": a.quality.reason})
    changes = []
    run_id = a.today.run_ids[0]
    for kind, (breach, details) in signals.items():
        action = episode.transition("breach" if breach else "ok", alert_open=kind in open_now)
        if action == "open":
            changes.append(alerts.Change(a.model, a.suite, kind, "opened", run_id, details))
        elif action == "close":
            changes.append(alerts.Change(a.model, a.suite, kind, "recovered", run_id, details, open_now[kind].id))
    return changes


def act(store: Store, assessments: list[Assessment], now: datetime,
        links: messages.Links = messages.Links()) -> list[Event]:
    """Open and close the alerts the assessments call for. The events of one model make one
    message per action: a provider-wide incident over its suites is one message, and so is
    their recovery together."""
    by_model: dict[str, list[alerts.Change]] = {}
    for a in assessments:
        by_model.setdefault(a.model, []).extend(decide(store, a))
    events = []
    for model, changes in by_model.items():
        if changes:
            def compose(action: str, made: list[alerts.Change], model=model) -> dict:
                return (incidents.opened if action == "opened" else incidents.recovered)(model, made, links)
            events += [Event(c.model, c.suite, c.kind, c.action)
                       for c in alerts.record(store, changes, compose, now=now)]
    return events


@dataclass
class Watch:
    summaries: list[RunSummary]
    confirmations: list[RunSummary]
    events: list[Event]
    assessments: list[Assessment]

    @property
    def regression(self) -> bool:
        return any(e.kind == "quality" and e.action == "opened" for e in self.events)


async def run_and_watch(store: Store, config: Config, jobs: list[Job], *, clock=utcnow, control: Control | None = None,
                        notifier: alerts.Notifier | None = None, sim: bool = False, **run_kwargs) -> Watch:
    """Run the jobs, confirm breaches, act on every signal, deliver due alert messages."""
    control = control or Control(lease=config.daemon.lease, owner=owner_id())
    summaries = await run_jobs(store, jobs, clock=clock, control=control, **run_kwargs)
    return await watch(store, config, jobs, summaries, clock=clock, control=control, notifier=notifier, sim=sim,
                       **run_kwargs)


async def watch(store: Store, config: Config, jobs: list[Job], summaries: list[RunSummary], *, clock=utcnow,
                control: Control, notifier: alerts.Notifier | None = None, sim: bool = False, **run_kwargs) -> Watch:
    """Judge finished runs: confirm a breach with a second run, act on every signal, deliver.

    Also what the daemon calls for a run that finished but was never judged (its process
    died in between). A breach whose confirmation run did not complete gives no quality
    verdict that day: an alert is only ever opened on confirmed data. `sim`: the runs are
    the simulated model's (the messages' commands say `--sim`).
    """
    confirm, first = [], {}
    if config.detection.confirm:
        for job, s in zip(jobs, summaries):
            a = first[s.run_id] = assess(store, config, s.model, s.suite, s.run_id)
            already_open = any(r.kind == "quality" for r in store.open_alerts(s.model, s.suite))
            if a and not control.stopping and episode.wants_confirmation(
                    a.quality, alert_open=already_open, confirm=True,
                    pooled=len(a.today.run_ids) > 1 or job.kind == "confirm"):
                confirm.append(Job(job.model, job.suite, job.repeat, job.slot, "confirm"))
    confirmations = await run_jobs(store, confirm, clock=clock, control=control, **run_kwargs) if confirm else []
    unconfirmed = {(c.model, c.suite): c.status for c in confirmations if c.status != "complete"}
    assessments, judged = [], []
    for s in summaries:
        if s.status != "complete":
            continue  # interrupted, over budget, or held by another replica: judged when complete
        confirmed = any((j.model.name, j.suite.name) == (s.model, s.suite) for j in confirm)
        # judged again only when a confirmation run joined its point
        a = first[s.run_id] if s.run_id in first and not confirmed else assess(store, config, s.model, s.suite, s.run_id)
        if a is None:  # e.g. a run from before the last ack: nothing to judge, ever
            judged.append(s.run_id)
            continue
        if (s.model, s.suite) in unconfirmed:
            a.quality = replace(a.quality, status="no_verdict",
                                reason=f"the confirmation run ended {unconfirmed[s.model, s.suite]}: no verdict")
        assessments.append(a)
        store.save_verdict(a.today.run_ids[0], a.quality.stored())  # what history and status show for it
        judged += a.today.run_ids
    events = act(store, assessments, clock(), messages.Links(config.alerts.report_url, sim))
    store.mark_assessed(judged, clock())
    await asyncio.to_thread(update_sensitivity, store, config, jobs, assessments, clock())
    # in a thread: an unreachable Slack must not stall the event loop (and the runs' heartbeats)
    await asyncio.to_thread(alerts.deliver, store, notifier, now=clock(), owner=control.owner)
    return Watch(summaries, confirmations, events, assessments)


def sensitivity_counts(a: Assessment, params: detect.DetectionParams) -> list[tuple[int, int]] | None:
    """Each case's (passed, answered) pooled over the eligible runs of today's suite version that
    its judgement read (the reference and the recent runs), once there are `window` of them
    (fewer would make the simulated rates too rough)."""
    version = a.today.point.suite_version
    eligible = [p.point for p in a.history + [a.today] if p.point.suite_version == version and not p.point.in_alert
                and detect.answered_enough(p.point, params.min_answered_share)]
    if len(eligible) < params.window:
        return None
    return list(detect.pool_cases(p.cases for p in eligible).values()) or None


def update_sensitivity(store: Store, config: Config, jobs: list[Job], assessments: list[Assessment],
                       now: datetime) -> None:
    """Simulate, once per suite version and settings, the smallest drop each judged series
    catches within 3 runs (what `canary status` shows; it never simulates itself)."""
    from . import power
    params = detection_params(config.detection)
    cache = store.sensitivities()
    for a in assessments:
        job = next((j for j in jobs if j.model.name == a.model and j.suite.name == a.suite), None)
        if job is None or job.suite.version != a.today.point.suite_version:
            continue
        key = power.settings_key(params, config.detection.confirm, job.model.repeat or job.suite.repeat)
        if (a.model, a.suite, job.suite.version, key) in cache:
            continue
        counts = sensitivity_counts(a, params)
        if counts is None:
            continue
        drop = power.smallest_drop(counts, params, config.detection.confirm, job.model.repeat or job.suite.repeat)
        store.save_sensitivity(model=a.model, suite=a.suite, suite_version=job.suite.version, settings=key,
                               min_drop=drop, trials=power.TRIALS, source="history", now=now)


def ack(store: Store, model: str, suite: str, now: datetime) -> int:
    """Accept today's level: close the series' open alerts; its baseline restarts at its last run.
    The fingerprint series re-references its inputs from the latest answers instead."""
    from .fingerprint import SUITE as FINGERPRINT
    if suite == FINGERPRINT:
        from .fingerprint.probe import accept
        return accept(store, model, now)
    latest = store.series(model, suite, kinds=("scheduled", "manual"), statuses=("complete",), limit=1)
    if not latest:
        from .errors import UsageError
        raise UsageError(f"no completed run of {model} on {suite} to acknowledge")
    run_id = latest[-1].id
    store.add_ack(model, suite, run_id, now)
    closed = 0
    for alert in store.open_alerts(model, suite):
        closed += alerts.close_alert(store, alert.id, run_id=run_id, by="ack", message=None, now=now)
    return closed
