"""Is canary doing its job? The health model that /healthz, /metrics and the self-alerts read.

`Health.check` says `ok`, `degraded` (HTTP 200, with the reasons: a slot failing, an alert
message Slack refused for good or that has waited over an hour, a model whose latest
scheduled slot is not done `daemon.late_after` past its time, a config that does not
validate) or `db_unreachable` (HTTP 503). `SelfAlerts` turns the same facts into alerts
about canary itself: `config_error`, `canary_failing` (a model's scheduled runs failing,
with no success, for longer than `daemon.failing_alert_after`) and `slot_missed` (a slot
given up). `Heartbeat` GETs `daemon.heartbeat_url` after good ticks, so that an outside
watcher notices a dead host, or a canary failing too long to tell anyone itself.
"""
from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from . import alerts, messages
from .config import Config
from .retries import SlotFailure, SlotRetries
from .slots import latest_fire, model_trigger
from .store import Store, failure_text

log = logging.getLogger("canary.daemon")

WAITING_TOO_LONG = timedelta(hours=1)  # an alert message pending this long makes canary degraded
DONE = ("complete", "budget_exhausted")  # a slot whose run ended so is done (a budget is the user's cap)
NO_MODEL = ""  # the model of alerts about the whole of canary (config_error)


@dataclass
class HealthReport:
    status: str  # ok | degraded | db_unreachable
    reasons: list[str] = field(default_factory=list)

    @property
    def code(self) -> int:
        return 503 if self.status == "db_unreachable" else 200


class Health:
    """The facts the daemon keeps in memory (database, config, failing slots) and those it reads
    from the database (the outbox, the latest slots), judged at `now`."""

    def __init__(self, retries: SlotRetries, started_at: datetime):
        self.retries = retries
        self.started_at = started_at  # slots from `catch_up` before this are this daemon's to run
        self.db_error: str | None = "not connected yet"  # None once the database answers
        self.config_problems: list[str] = []

    def check(self, store: Store, config: Config, now: datetime) -> HealthReport:
        reasons = []
        db = self.db_error is None and store.ping()
        if not db:
            reasons.append(f"database unreachable: {self.db_error or 'it does not answer'}")
        reasons += [f"slot failing: {f.describe()}" for f in self.retries.slots.values()]
        pending = {f.model for f in self.retries.slots.values()}
        reasons += [f"{model}: a slot was given up and no scheduled run has worked since {since.isoformat()} ({why})"
                    for model, (since, why) in self.retries.failing_since.items() if model not in pending]
        if self.config_problems:
            reasons.append(f"config does not validate ({len(self.config_problems)} problem(s), the first: "
                           f"{self.config_problems[0]}); the last good config keeps running")
        if db:
            try:
                reasons += undelivered(store, now) + late_slots(store, config, now, self.started_at)
            except Exception as exc:  # the database went away between the ping and the queries
                reasons.append(f"database: {failure_text(exc)}")
        return HealthReport("db_unreachable" if not db else "degraded" if reasons else "ok", reasons)


def undelivered(store: Store, now: datetime) -> list[str]:
    """Alert messages Slack refused for good since the last one it took, and those waiting too long."""
    failed, waiting = store.undelivered(now - WAITING_TOO_LONG)
    out = []
    if failed:
        out.append(f"{len(failed)} alert message(s) undeliverable, refused for good ({failed[-1].last_error}); "
                   "see `canary alerts`")
    if waiting:
        out.append(f"{len(waiting)} alert message(s) waiting for Slack over {WAITING_TOO_LONG} "
                   f"({waiting[-1].last_error or 'not sent yet'})")
    return out


def late_slots(store: Store, config: Config, now: datetime, started_at: datetime) -> list[str]:
    """Models whose latest slot due `late_after` ago (and this daemon's to run) is not done."""
    d = config.daemon
    done = store.last_done_slots(DONE)
    out = []
    for m in config.models:
        expected = latest_fire(model_trigger(config, m), now - d.late_after, started_at - d.catch_up)
        last = done.get(m.name)
        if expected is not None and (last is None or last < expected):
            out.append(f"{m.name}: the slot of {expected.isoformat()} is not done {d.late_after} after its time "
                       f"(last done: {last.isoformat() if last else 'none'})")
    return out


class SelfAlerts:
    """Alerts about canary itself. Every method writes to the database: call them from a thread."""

    def __init__(self):
        self.missed: list[SlotFailure] = []  # given up, their alert not written yet
        self.failing_open: set[str] = set()  # models whose canary_failing alert is known to be open

    def config_state(self, store: Store, problems: list[str], path, now: datetime) -> None:
        """One config_error alert while there are problems, closed when there are none."""
        if problems:
            details = {"problems": problems[:50], "reason": f"{len(problems)} problem(s) in {path} or its "
                                                            "suites; the last good config keeps running"}
            alerts.open_alert(store, model=NO_MODEL, suite="", kind="config_error", run_id=None, details=details,
                              message=messages.config_error(details), now=now)
            return
        for a in store.open_alerts(NO_MODEL, ""):
            if a.kind == "config_error":
                alerts.close_alert(store, a.id, run_id=None, by="recovered", message=messages.config_error(None),
                                   now=now)

    def pending(self, retries: SlotRetries, after: timedelta, now: datetime) -> bool:
        """Whether `sync` has anything to write."""
        return bool(self.missed) or bool(set(retries.failing_longer_than(after, now)) - self.failing_open)

    def sync(self, store: Store, retries: SlotRetries, after: timedelta, now: datetime) -> None:
        """Write the alerts of slots given up, and open `canary_failing` for each model failing
        longer than `after` (once per episode)."""
        while self.missed:
            f = self.missed[0]
            details = {"slot": f.slot.isoformat(), "kind": f.kind, "attempts": f.attempts, "error": f.why,
                       "reason": f"the slot of {f.slot.isoformat()} UTC ({f.kind}) was given up after "
                                 f"{f.attempts} attempt(s) since {f.first_at.isoformat()}: {f.why}"}
            alert_id = alerts.open_alert(store, model=f.model, suite="", kind="slot_missed", run_id=None,
                                         details=details, message=messages.about_canary(f.model, "slot_missed", details),
                                         now=now)
            if alert_id is not None:  # an event, not an episode: closed as it opens
                alerts.close_alert(store, alert_id, run_id=None, by="given_up", message=None, now=now)
            self.missed.pop(0)
        for model, (since, why) in retries.failing_longer_than(after, now).items():
            if model in self.failing_open:
                continue
            details = {"since": since.isoformat(), "error": why,
                       "reason": f"its scheduled runs have failed since {since.isoformat()} UTC (retried until "
                                 f"`daemon.catch_up` ends): {why}"}
            alerts.open_alert(store, model=model, suite="", kind="canary_failing", run_id=None, details=details,
                              message=messages.about_canary(model, "canary_failing", details), now=now)
            self.failing_open.add(model)

    def recovered(self, store: Store, model: str, now: datetime) -> None:
        """A scheduled slot of `model` ran: close its canary_failing alert if one is open."""
        self.failing_open.discard(model)
        for a in store.open_alerts(model, ""):
            if a.kind == "canary_failing":
                alerts.close_alert(store, a.id, run_id=None, by="recovered",
                                   message=messages.about_canary(model, "canary_failing", None), now=now)


class Heartbeat:
    """GET `url` at most once a minute; a failure is logged once, until it works again."""

    EVERY = timedelta(minutes=1)

    def __init__(self, url: str | None, timeout: float = 10.0):
        self.url, self.timeout = url, timeout
        self.last: datetime | None = None
        self.error: str | None = None

    @property
    def where(self) -> str:  # the host only: the URL's path is often the check's secret
        parts = urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def due(self, now: datetime) -> bool:
        return bool(self.url) and (self.last is None or now - self.last >= self.EVERY)

    def ping(self, now: datetime) -> bool:
        self.last = now
        try:
            request = urllib.request.Request(self.url, headers={"User-Agent": "canary"})
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                resp.read(1024)
        except Exception as exc:
            why = f"{type(exc).__name__}: {getattr(exc, 'code', '') or getattr(exc, 'reason', '') or ''}".rstrip(": ")
            if why != self.error:
                log.warning("heartbeat to %s failed (%s); an outside watcher may report canary down", self.where, why)
            self.error = why
            return False
        if self.error:
            log.info("heartbeat to %s works again", self.where)
        self.error = None
        return True
