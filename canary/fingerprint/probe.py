"""Phase 2: a probe of the border inputs, the series it makes, its model_changed episode, ack.

A probe is a run of suite `fingerprint` (kind scheduled or manual, suite_version = the
fingerprint's version) with every one-token call kept as a sample row, so `export`,
`import`, budgets and the run tables see it like any run; a slot's probe is claimed and
resumed like a suite's. After a probe, the whole series since the fingerprint was made is
judged (`rule.judge`, a pure function of it), and the alert table is brought in line: an
episode opens with one message and closes with one `recovered` message. `canary ack
--model M --suite fingerprint` accepts the change: the inputs are re-referenced from the
answers given since the episode began, which starts a new series.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from .. import alerts, messages
from ..config import Config, ModelConfig
from ..errors import StorageError, UsageError
from ..runner import (Budget, Clock, Control, ProviderFactory, RunSummary, give_back, heartbeat, make_provider,
                      owner_id, utcnow)
from ..store import Store
from ..writer import SampleWriter
from . import SUITE
from .calls import Caller
from .phase1 import Found, save
from .rule import RuleParams
from .series import KIND, RULE, Current, Point, answers, current, rule_for, samples_per_input, series

log = logging.getLogger("canary.fingerprint")


def planned_calls(store: Store, model: ModelConfig) -> int:
    """One-token calls of one probe of the model (0 without a fingerprint)."""
    fp = current(store, model.name)
    return len(fp.prompts) * samples_per_input(model, fp) if fp else 0


# --- a probe --------------------------------------------------------------------------------

@dataclass
class ProbeResult:
    summary: RunSummary | None  # None: the slot's probe is held by another replica
    point: Point | None  # the probe judged (None until it is complete)
    events: list[str]  # opened | recovered


async def run_probe(store: Store, model: ModelConfig, fp: Current, *, slot: datetime, kind: str, clock: Clock,
                    control: Control, provider_factory: ProviderFactory, on_call=None) -> RunSummary | None:
    """Claim the slot's probe run (or resume it), make its missing calls, close it.

    Like a suite's run (`runner.run_jobs`): a heartbeat task keeps the run visibly held (a
    run another replica took over is left to it: None); when the database fails, the calls
    in flight finish, the run is marked `interrupted` if the database still takes that (the
    next probe of the slot makes only its missing calls) and StorageError says so in one line.
    """
    n = samples_per_input(model, fp)
    plan = [(prompt, i) for prompt in fp.prompts for i in range(n)]
    provider = provider_factory(model)  # first: a key that is unset claims nothing
    try:
        midnight = clock().replace(hour=0, minute=0, second=0, microsecond=0)
        budget = Budget(model, *store.spent_since(model.name, midnight))
        run_id = store.create_run(model=model.name, suite=SUITE, suite_version=fp.version, slot=slot, kind=kind,
                                  planned=len(plan), owner=control.owner, now=clock())
        if run_id is None:
            existing = store.find_run(model.name, SUITE, slot, kind)
            if existing.status == "complete" or not store.take_over(
                    existing.id, control.owner, clock(), unless_heartbeat_after=clock() - control.lease):
                await provider.aclose()  # the slot is done or held elsewhere: nothing to call
                return RunSummary.of(existing) if existing.status == "complete" else None
            run_id = existing.id
    except BaseException:
        await provider.aclose()
        raise
    held = {run_id}
    failures: list[BaseException] = []

    def on_answer(answer) -> None:
        row = {**answer.row, "run_id": run_id}
        budget.add(row)
        try:
            writer.put(row)
            if on_call:
                on_call()
        except Exception as exc:  # no new call; those in flight finish
            failures.append(exc)

    def stop() -> bool:
        return bool(failures) or control.stopping or budget.exhausted or run_id in control.lost

    writer = SampleWriter(store)
    beat = asyncio.create_task(heartbeat(store, control, held, clock))
    try:
        done = store.done_samples(run_id)
        await Caller(provider, model, clock).ask_all([w for w in plan if w not in done], on_answer=on_answer,
                                                     stop=stop)
    except Exception as exc:
        failures.append(exc)
    finally:
        beat.cancel()
        try:
            writer.close()
        except StorageError as exc:
            failures.append(exc)
        await provider.aclose()
    if failures:
        give_back(store, held, control, clock, failures[0])
    if run_id in control.lost:  # taken over by a replica that found our heartbeat stale: its run now
        return None
    try:
        if len(store.done_samples(run_id)) >= len(plan):
            status = "complete"
        else:  # stopped by a shutdown or the daily budget: resumed (its missing calls only) when claimed again
            status = "budget_exhausted" if budget.exhausted and not control.stopping else "interrupted"
        return RunSummary.of(store.finish_run(run_id, status, clock()))
    except Exception as exc:  # the database failed as the run was being closed
        give_back(store, held, control, clock, exc)


def act(store: Store, model: str, points: list[Point], now: datetime, rule: RuleParams = RULE,
        links: messages.Links = messages.Links()) -> list[str]:
    """Open or close the model_changed episode so the alert table says what the series says."""
    if not points:
        return []
    last = points[-1]
    open_now = [a for a in store.open_alerts(model, SUITE) if a.kind == KIND]
    if last.judged.alert and not open_now:
        details = episode_details(points, rule.min_shift)
        if alerts.open_alert(store, model=model, suite=SUITE, kind=KIND, run_id=last.run.id, details=details,
                             message=messages.fingerprint_changed(model, details, links), now=now):
            return ["opened"]
    elif not last.judged.alert and open_now:
        details = {"reason": f"the answers are back inside their usual range: {last.judged.reason}",
                   "distance": last.judged.value, "mean": last.judged.mean, "upper": last.judged.upper}
        if alerts.close_alert(store, open_now[0].id, run_id=last.run.id, by="recovered",
                              message=messages.fingerprint_recovered(model, details, links), now=now):
            return ["recovered"]
    return []


def episode_details(points: list[Point], min_shift: float = RULE.min_shift) -> dict:
    """What moved: inputs outside their own usual range, the distance against the band, since when."""
    last, j = points[-1], points[-1].judged
    onset = points[j.onset] if j.onset is not None else last
    base = [points[i].probe.per_input for i in j.baseline]

    def usual(prompt: str) -> float:
        values = [b[prompt] for b in base if prompt in b]
        return sum(values) / len(values) if values else 0.0
    # an input moved when its distance is above its own usual by more than the floor: when the
    # mean deviates upwards by more than the floor, at least one input does
    moved = sorted((p for p, tv in last.probe.per_input.items() if tv - usual(p) > min_shift),
                   key=lambda p: usual(p) - last.probe.per_input[p])
    since = onset.run.slot
    details = {
        "distance": j.value, "mean": j.mean, "sd": j.sd, "upper": j.upper, "lower": j.lower,
        "logprob": j.logprob, "logprob_mean": j.logprob_mean, "logprob_upper": j.logprob_upper,
        "inputs": len(last.probe.per_input), "moved": len(moved), "moved_inputs": moved[:5],
        "since": since.isoformat(), "probes": len(points) - (j.onset or 0),
        "reason": (f"{len(moved)} of {len(last.probe.per_input)} border inputs answer outside their usual range; "
                   f"mean distance {j.value:.3f} against a usual {j.mean:.3f} (band up to {j.upper:.3f}), "
                   f"since {since:%Y-%m-%d %H:%M} UTC"),
    }
    return details


async def probe(store: Store, config: Config, model: ModelConfig, *, slot: datetime | None = None,
                kind: str = "manual", clock: Clock = utcnow, control: Control | None = None,
                provider_factory: ProviderFactory = make_provider, notifier: alerts.Notifier | None = None,
                on_call=None, sim: bool = False) -> ProbeResult:
    """One probe of a model now (or of a scheduled slot): run, judge the series, act, deliver.
    `sim`: the simulated model's database (the messages' commands say `--sim`)."""
    fp = current(store, model.name)
    if fp is None:
        raise UsageError(f"model {model.name} has no fingerprint yet: run `canary fingerprint init --model {model.name}`")
    control = control or Control(lease=config.daemon.lease, owner=owner_id())
    summary = await run_probe(store, model, fp, slot=slot or clock(), kind=kind, clock=clock, control=control,
                              provider_factory=provider_factory, on_call=on_call)
    rule = rule_for(model)
    points = series(store, model.name, fp, rule)
    events = act(store, model.name, points, clock(), rule, messages.Links(config.alerts.report_url, sim))
    if summary is not None:
        store.mark_assessed([summary.run_id], clock())
    await asyncio.to_thread(alerts.deliver, store, notifier, now=clock(), owner=control.owner)
    point = next((p for p in points if summary and p.run.id == summary.run_id), None)
    return ProbeResult(summary, point, events)


async def probe_slot(store: Store, config: Config, model_name: str, slot: datetime, kind: str, *, clock: Clock,
                     control: Control, provider_factory: ProviderFactory,
                     notifier: alerts.Notifier | None, sim: bool = False) -> ProbeResult | None:
    """The daemon's hook, in a model's slot beside its suites: probe it if it has a fingerprint.
    Never raises (a failed probe is logged; the suites still run)."""
    model = next((m for m in config.models if m.name == model_name), None)
    if model is None or model.fingerprint is None or kind != "scheduled" or control.stopping:
        return None
    try:
        if current(store, model.name) is None:
            log.warning("model %s: fingerprint configured but never made; run `canary fingerprint init --model %s`",
                        model.name, model.name)
            return None
        result = await probe(store, config, model, slot=slot, kind="scheduled", clock=clock, control=control,
                             provider_factory=provider_factory, notifier=notifier, sim=sim)
    except Exception as exc:  # the suites of the slot must still run
        log.error("fingerprint probe of %s at %s failed: %s", model.name, slot.isoformat(), exc)
        return None
    for event in result.events:
        log.warning("alert %s: %s · %s: %s", event, model.name, SUITE, KIND)
    return result


# --- ack: the change is the new normal ----------------------------------------------------------

def accept(store: Store, model: str, now: datetime) -> int:
    """Re-reference the inputs from the answers since the open episode began (else the last
    `persistence` probes) and close the episode: a new fingerprint version, a new series."""
    fp = current(store, model)
    if fp is None:
        raise UsageError(f"model {model} has no fingerprint to acknowledge (run `canary fingerprint init`)")
    points = series(store, model, fp)
    if not points:
        raise UsageError(f"no completed probe of {model} to take as the new reference")
    open_alerts = [a for a in store.open_alerts(model, SUITE) if a.kind == KIND]
    since = datetime.fromisoformat(open_alerts[0].details["since"]) if open_alerts else None
    chosen = [p for p in points if p.run.slot >= since] if since else points[-RULE.persistence:]
    given = answers(store, [p.run.id for p in chosen])
    found = Found(tried=fp.row.candidates, temperature=fp.row.temperature, with_logprobs=fp.row.logprobs)
    for prompt in fp.prompts:
        found.answers[prompt] = [a for run in given.values() for a in run[0].get(prompt, [])]
        found.logprobs[prompt] = [lp for run in given.values() for lp in run[1].get(prompt, [])]
    found.kept = [p for p in fp.prompts if any(found.answers[p])]
    if not found.kept:
        raise UsageError(f"the latest probes of {model} have no answers to take as the new reference")
    save(store, model, found, now, origin="ack", border=fp.row.border)  # closes the open episode (by ack)
    return len(open_alerts)
