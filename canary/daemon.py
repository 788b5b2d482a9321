"""`canary daemon`: a thin APScheduler layer over `monitor.run_and_watch`, the function `canary run` calls.

One cron job per model (its `schedule` or the global one, in `timezone`, with optional
jitter) runs the model's latest slot. A slot is (model, suite, scheduled time, kind); a
replica claims it by inserting its unique run row before it runs anything, so several
daemons on one PostgreSQL share the work and none runs a slot twice. A run abandoned by its
replica (silent for `daemon.lease`, or its owner provably gone: see `slots`) is taken over
by the next tick of any replica, and `runner.run_jobs` runs only its missing samples. At
start, each model's latest slot within `catch_up` runs at once unless complete (the
catch-up rule); `--once` does just that, then exits.

A slot whose claim or run fails (the database locked, down or full) stays due: the
`retries.SlotRetries` policy tries it again with backoff until `catch_up` ends, then gives
it up (logged, and a `slot_missed` alert). A database unreachable at start does not stop
the daemon: it serves /healthz (503) and retries with backoff, then starts as usual.
/healthz, /metrics and the alerts about canary itself read `health`; `health.Heartbeat`
pings `daemon.heartbeat_url`.

Besides the model jobs there are two: `tick` every few seconds (the database until it
answers, config files changed on disk, abandoned runs, retries due, alerts about canary,
the heartbeat) and `deliver` every 30 s (the alert outbox, so a Slack outage is retried).
`service.Service` runs it as a process (HTTP, signals, a graceful stop, `--once`).
Time is a parameter: every decision reads `clock()` (naive UTC), never the wall clock.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.exc import DBAPIError

from . import alerts, logs, redact
from .clock import iso
from .config import Config, ModelConfig, find_config
from .errors import CanaryError, ConfigError, StorageError, UsageError
from .fingerprint.probe import probe_slot
from .health import Health, Heartbeat, SelfAlerts
from .monitor import Watch, run_and_watch, watch
from .report_html import render_report
from .reports import next_run
from .retries import Backoff, SlotKey, SlotRetries
from .runner import Clock, Control, Job, ProviderFactory, RunSummary, jobs_for, make_provider, owner_id, utcnow
from .slots import (SqliteLock, _aware, abandoned_runs, claim, due_slots, interrupt_orphans,
                    latest_fire, model_trigger, process_gone, repeated_wall_time)
from .store import Store, failure_text, is_database_failure
from .web import CachedPage, Metrics
from .workspace import FileWatch, Workspace, open_workspace

log = logging.getLogger("canary.daemon")

TICK_SECONDS = 5.0  # the database until it answers, config files on disk, abandoned runs, retries
DELIVER_SECONDS = 30.0  # the alert outbox
DB_BACKOFF = Backoff(first=timedelta(seconds=1), most=timedelta(minutes=1))  # the database, at start


class Daemon:
    """The scheduler of one replica. Every method that decides reads `clock`; tests drive it directly."""

    def __init__(self, config_path=None, *, clock: Clock = utcnow, provider_factory: ProviderFactory = make_provider,
                 owner: str | None = None, tick: float = TICK_SECONDS, lock: bool = False,
                 redactor: logs.RedactSecrets | None = None, wait_for_database: bool = True):
        self.config_path = find_config(config_path).resolve()
        self.clock, self.provider_factory, self.tick_seconds = clock, provider_factory, tick
        self.owner = owner or owner_id()
        self.redactor, self.wait_for_database = redactor, wait_for_database
        self.ws: Workspace = self.open_workspace()  # ConfigError: no good config to start from
        self._lock = SqliteLock(self.ws.database_url) if lock else None
        self.store = Store(self.ws.database_url, upgrade=False)  # connected (and migrated) by connect()
        self.control = Control(lease=self.config.daemon.lease, owner=self.owner)
        self.metrics = Metrics(lambda: self.store, lambda: self.config, lambda: self.ws.suites)
        self.page = CachedPage(self._render, lambda: (id(self.ws), self.store.data_version()))
        self.notifier = alerts.notifier_from_config(self.config.alerts)
        self.retries = SlotRetries()
        self.health = Health(self.retries, started_at=clock())
        self.self_alerts = SelfAlerts()
        self.heartbeat = Heartbeat(self.config.daemon.heartbeat_url)
        self.files = FileWatch(self.config_path, self.config.prompts_dir)
        self.scheduler: AsyncIOScheduler | None = None
        self.last_tick: datetime | None = None
        self._tasks: set[asyncio.Task] = set()
        self._active: set[tuple[str, datetime, str]] = set()
        self._model_locks: dict[str, asyncio.Lock] = {}
        self._last_sweep: datetime | None = None
        self._db_attempts, self._db_next = 0, clock()
        self._logged: dict[str, str] = {}  # topic -> the failure last logged (each is logged once)
        self._update_secrets()
        self._warn(self.ws.warnings)
        self.connect()

    @property
    def config(self) -> Config:
        return self.ws.config

    @property
    def connected(self) -> bool:
        return self.health.db_error is None

    @property
    def config_ok(self) -> bool:
        return not self.health.config_problems

    def connect(self, now: datetime | None = None) -> bool:
        """Take the SQLite lock and migrate the database. False while that fails (the tick tries
        again with backoff, 1 s doubling to a minute); once it works, the daemon starts as usual.
        At the first try, another daemon holding the SQLite lock raises UsageError, and a database
        that fails raises StorageError unless `wait_for_database` (`--once` does not wait)."""
        now = now or self.clock()
        try:
            if self._lock:
                self._lock.acquire(self.owner)
            self.store.upgrade()
        except (StorageError, UsageError, OSError) as exc:
            why = f"cannot use {self._lock.path}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            if not self._db_attempts and isinstance(exc, UsageError):
                raise
            if not self._db_attempts and not self.wait_for_database:
                raise StorageError(why) from None
            self._db_attempts += 1
            self._db_next = now + DB_BACKOFF.delay(self._db_attempts)
            if why != self.health.db_error:
                log.error("%s; retrying (next in %.0f s), /healthz answers 503 meanwhile", why,
                          (self._db_next - now).total_seconds())
            self.health.db_error = why
            return False
        if self._db_attempts:
            log.info("database %s answers after %d failed attempt(s): starting", self.store.safe_url, self._db_attempts)
        self.health.db_error = None
        self._config_state(self.ws.problems)
        return True

    # --- the hook of `canary daemon --sim` (canary/sim_daemon.py) ------------------------------
    sim = False  # True: the simulated model's database (canary-sim.db), as `canary run --sim`

    def open_workspace(self) -> Workspace:
        """canary.yaml and the suites, read from disk (at start and at each reload)."""
        return open_workspace(self.config_path, sim=self.sim)

    # --- slots ------------------------------------------------------------------------------

    def trigger(self, model: ModelConfig, *, jitter: bool = False) -> CronTrigger:
        return model_trigger(self.config, model, jitter=jitter)

    def due_slots(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        return due_slots(self.config, now or self.clock())

    def abandoned_runs(self, now: datetime | None = None) -> list[tuple[str, datetime, str]]:
        return abandoned_runs(self.store, self.config, now or self.clock(), self._gone)

    def _gone(self, owner: str | None, kind: str) -> bool:
        """The owner of a run is gone: dead on this host, or, for a scheduled run, any other daemon
        while this one holds the SQLite lock (only daemons run scheduled slots)."""
        locked = kind == "scheduled" and bool(self._lock and self._lock.held)
        return owner != self.owner and (locked or process_gone(owner, self.owner))

    async def run_slot(self, model: str, slot: datetime, kind: str = "scheduled") -> Watch | None:
        """Run or resume one model's slot: each suite not complete and not held by a live replica.
        A failure leaves the slot to the retry policy."""
        key = (model, slot, kind)
        if key in self._active:
            return None
        self._active.add(key)
        try:
            async with self._model_locks.setdefault(model, asyncio.Lock()):  # one slot of a model at a time
                if self.control.stopping:
                    return None
                ws = self.ws  # the config as it is when the slot starts
                if model not in {m.name for m in ws.config.models}:
                    return None
                jobs = jobs_for(ws.config, ws.suites, models=[model], slot=slot, kind=kind)
                if jobs:  # a model that cannot be called (its key unset) claims nothing; this also warms its SDK
                    await self.provider_factory(jobs[0].model).aclose()
                if not self.connected:
                    raise StorageError(self.health.db_error)
                await probe_slot(self.store, ws.config, model, slot, kind, clock=self.clock, control=self.control,
                                 provider_factory=self.provider_factory, notifier=self.notifier, sim=ws.sim)
                jobs = await asyncio.to_thread(claim, self.store, ws.config, jobs, self.owner, self.clock(), self._gone)
                if not jobs:
                    log.info("slot %s %s (%s): already claimed (complete, or held by another replica)",
                             model, slot.isoformat(), kind)
                    self.metrics.slots.labels(model, "skipped").inc()
                    self.retries.succeeded(key)
                    return None
                log.info("slot %s %s (%s): running %s", model, slot.isoformat(), kind,
                         ", ".join(j.suite.name for j in jobs), extra={"model": model, "slot": slot.isoformat()})
                watch = await run_and_watch(self.store, ws.config, jobs, clock=self.clock, control=self.control,
                                            notifier=self.notifier, sim=ws.sim, provider_factory=self.provider_factory,
                                            on_sample=self._on_sample)
                self._record(kind, jobs, watch)
            if self.retries.succeeded(key):
                await asyncio.to_thread(self.self_alerts.recovered, self.store, model, self.clock())
            return watch
        except Exception as exc:
            self._slot_failed(key, exc)
        finally:
            self._active.discard(key)
        return None

    def _slot_failed(self, key: SlotKey, exc: Exception) -> None:
        """Count the failure and leave the slot to the retry policy; each new reason is logged once."""
        known = isinstance(exc, (CanaryError, DBAPIError))
        why = failure_text(exc) if known else f"{type(exc).__name__}: {exc}"
        failure, new = self.retries.failed(key, why, now=self.clock(), catch_up=self.config.daemon.catch_up,
                                           storage=is_database_failure(exc))
        self.metrics.slots.labels(key[0], "failed").inc()
        self.metrics.slot_failures.labels(key[0]).inc()
        if new:
            log.error("slot failed: %s", failure.describe(), exc_info=None if known else exc)

    def launch(self, model: str, slot: datetime, kind: str = "scheduled") -> asyncio.Task:
        """Run a slot in a task of this daemon (never one of APScheduler's, which shutdown would cancel)."""
        return self._spawn(self.run_slot(model, slot, kind), f"canary {model} {slot.isoformat()} {kind}")

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def on_cron(self, model: str) -> None:
        """APScheduler's job for one model: launch its latest slot (the cron time, jitter excluded)."""
        m = next((m for m in self.config.models if m.name == model), None)
        if m is None or self.control.stopping:
            return
        now = self.clock()
        window = self.config.daemon.catch_up + self.config.daemon.jitter + timedelta(minutes=1)
        trigger = self.trigger(m)
        slot = latest_fire(trigger, now, now - window)
        if slot is not None and not repeated_wall_time(trigger, slot):
            self.launch(model, slot)

    def catch_up(self, now: datetime | None = None) -> list[asyncio.Task]:
        """Launch abandoned runs within `catch_up`, then each model's latest slot (the catch-up rule),
        and judge runs that finished but were never judged."""
        now = now or self.clock()
        work = self.abandoned_runs(now) + [(m, s, "scheduled") for m, s in self.due_slots(now)]
        return [self.launch(*w) for w in work] + self.judge_unassessed(now)

    def judge_unassessed(self, now: datetime) -> list[asyncio.Task]:
        """Runs complete but never judged (their process died in between; finished longer ago than
        the lease, so their owner is not about to): confirm, act and deliver now, the runs of one
        model and slot together (their alerts make one message, as when they were run)."""
        d = self.config.daemon
        rows = self.store.unassessed([m.name for m in self.config.models], since=now - d.catch_up,
                                     finished_before=now - d.lease)
        by_slot: dict[tuple[str, datetime], list] = {}
        for row in rows:
            by_slot.setdefault((row.model, row.slot), []).append(row)
        tasks = []
        for (model, slot), group in by_slot.items():
            key = (model, slot, "judge")
            if key not in self._active:
                self._active.add(key)
                tasks.append(self._spawn(self._judge(group, key), f"canary judge {model} {slot.isoformat()}"))
        return tasks

    async def _judge(self, rows: list, key) -> None:
        model, slot = key[0], key[1]
        try:
            async with self._model_locks.setdefault(model, asyncio.Lock()):
                ws = self.ws
                by_suite = {row.suite: row for row in rows}
                jobs = [j for j in jobs_for(ws.config, ws.suites, models=[model], slot=slot, kind="scheduled")
                        if j.suite.name in by_suite]
                if not jobs:
                    return
                summaries = [RunSummary.of(by_suite[j.suite.name]) for j in jobs]  # in the jobs' order
                log.info("judging run(s) %s (%s %s: %s), finished but never judged", ", ".join(
                    str(s.run_id) for s in summaries), model, slot.isoformat(), ", ".join(j.suite.name for j in jobs))
                await watch(self.store, ws.config, jobs, summaries, clock=self.clock,
                            control=self.control, notifier=self.notifier, sim=ws.sim,
                            provider_factory=self.provider_factory, on_sample=self._on_sample)
        except Exception:
            log.exception("judging run(s) %s failed", ", ".join(str(row.id) for row in rows))
        finally:
            self._active.discard(key)

    async def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait (at most `timeout` seconds) until every launched slot has finished."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"slots still running after {timeout} s: {sorted(t.get_name() for t in self._tasks)}")
            await asyncio.wait(set(self._tasks), timeout=left)

    def _on_sample(self, job: Job, row: dict) -> None:
        self.metrics.sample(job.model.name, job.suite.name, row)

    def _record(self, kind: str, jobs: list[Job], watch: Watch) -> None:
        for k, s in [(kind, s) for s in watch.summaries] + [("confirm", s) for s in watch.confirmations]:
            self.metrics.run(s.model, s.suite, k, s.status)
            rate = "-" if s.pass_rate is None else f"{100 * s.pass_rate:.1f}%"
            log.info("run %s · %s (%s): %s, pass rate %s (%d/%d), %d errors", s.model, s.suite, k, s.status,
                     rate, s.passed, s.answered, s.errors, extra={"model": s.model, "suite": s.suite, "run_id": s.run_id})
        for e in watch.events:
            log.warning("alert %s: %s · %s: %s", e.action, e.model, e.suite, e.kind)
        if jobs:
            self.metrics.slots.labels(jobs[0].model.name, "ran").inc()

    # --- housekeeping -------------------------------------------------------------------------

    async def tick(self) -> None:
        """Every few seconds: the database until it answers; then config files changed on disk,
        abandoned runs, failed slots due again or given up, alerts about canary, the heartbeat."""
        now = self.clock()
        self.last_tick = now
        self.metrics.last_tick.set(_aware(now).timestamp())
        if self.control.stopping:
            return
        if not self.connected:
            if now >= self._db_next and await asyncio.to_thread(self.connect, now):
                self.catch_up(now)
            return
        d = self.config.daemon
        swept = False
        try:
            self.retry(now)
            self.check_reload()
            sweep_every = max(min(d.lease / 2, timedelta(seconds=30)), timedelta(seconds=self.tick_seconds))
            if self._last_sweep is None or now - self._last_sweep >= sweep_every:
                self._last_sweep = now
                await self.sweep(now)
                swept = True
            if self.self_alerts.pending(self.retries, d.failing_alert_after, now):
                await asyncio.to_thread(self.self_alerts.sync, self.store, self.retries, d.failing_alert_after, now)
        except Exception as exc:  # the database is down, say: try again next tick
            self._log_once("tick", f"tick failed: {failure_text(exc)}", exc)
            return
        self._log_once("tick", None)
        # the heartbeat says "canary works": not while the database fails, nor a model's slots for too long
        if swept and self.heartbeat.due(now) and not self.retries.failing_longer_than(d.failing_alert_after, now):
            await asyncio.to_thread(self.heartbeat.ping, now)

    async def sweep(self, now: datetime) -> None:
        """Resume abandoned runs, mark orphaned manual runs interrupted, judge unjudged runs."""
        for model, slot, kind in await asyncio.to_thread(self.abandoned_runs, now):
            if (model, slot, kind) not in self._active:
                log.info("abandoned run found: %s %s (%s)", model, slot.isoformat(), kind)
                self.launch(model, slot, kind)
        for row in await asyncio.to_thread(interrupt_orphans, self.store, now, self.config.daemon.lease, self._gone):
            log.warning("run %s (%s · %s, manual) was left running by %s, which is gone: marked interrupted, "
                        "%d of %d samples kept", row.id, row.model, row.suite, row.owner,
                        row.passed + row.failed + row.errors, row.planned)
        self.judge_unassessed(now)

    def retry(self, now: datetime) -> None:
        """Launch the failed slots whose backoff has passed; give up those past `catch_up`."""
        for key in self.retries.due(now):
            if key not in self._active:
                self.launch(*key)
        for f in self.retries.expired(now):
            log.error("slot given up (daemon.catch_up has passed): %s", f.describe())
            self.metrics.slots.labels(f.model, "given_up").inc()
            self.self_alerts.missed.append(f)

    def _log_once(self, topic: str, failure: str | None, exc: BaseException | None = None) -> None:
        """Log a failure when it first happens or changes, and when it ends (failure None)."""
        before = self._logged.pop(topic, None)
        if failure is None:
            if before:
                log.info("%s works again", topic)
            return
        self._logged[topic] = failure
        if failure != before:
            log.error("%s", failure, exc_info=None if is_database_failure(exc) else exc)

    async def deliver(self) -> None:
        """Send what is due in the alert outbox (retries of refused messages included)."""
        if self.control.stopping or not self.connected:
            return
        try:
            report = await asyncio.to_thread(alerts.deliver, self.store, self.notifier, now=self.clock(),
                                             owner=self.owner)
        except Exception as exc:
            self._log_once("alert delivery", f"alert delivery failed: {failure_text(exc)}; retried every "
                                             f"{DELIVER_SECONDS:.0f} s", exc)
            return
        self._log_once("alert delivery", None)
        if report.sent or report.failed or report.dropped:
            log.info("alert outbox: %d sent, %d refused (will retry), %d refused for good", report.sent,
                     report.failed, report.dropped)

    def report(self) -> str:
        """The page `canary report` writes (its `/`), built again only when a run, a verdict, an
        alert or an ack changed what it shows, or the config was reloaded."""
        return self.page()

    def _render(self) -> str:
        return render_report(self.store, self.config, self.ws.suites, self.clock())

    def healthz(self) -> tuple[int, dict]:
        """(HTTP status, body) of /healthz: `health.Health`'s verdict and reasons, and what runs."""
        now = self.clock()
        verdict = self.health.check(self.store, self.config, now)
        return verdict.code, {
            "status": verdict.status, "reasons": verdict.reasons, "db": verdict.status != "db_unreachable",
            "last_tick": iso(self.last_tick),
            "tick_age_s": round((now - self.last_tick).total_seconds(), 3) if self.last_tick else None,
            "owner": self.owner, "config": str(self.config_path), "config_ok": self.config_ok,
            "failing": [f.describe() for f in self.retries.slots.values()],
            "running": sorted(f"{m} {s.isoformat()} {k}" for m, s, k in list(self._active)),
            "next_runs": {m.name: iso(next_run(self.config, m, now)) for m in self.config.models},
        }

    # --- reload -------------------------------------------------------------------------------

    def check_reload(self) -> bool | None:
        """Reload when the files changed and then stayed the same for one poll. None: nothing to
        do; else whether the new config was applied."""
        return self.reload("files changed") if self.files.settled(self.config.prompts_dir) else None

    def reload(self, reason: str = "SIGHUP") -> bool:
        """Load canary.yaml and the suites again: apply them if the config validates, else keep the
        last good config running (one config_error alert). A bad suite file: the good suites are
        applied, and a suite that disappeared with the bad file keeps its last good version."""
        self.files.applied_now(self.config.prompts_dir)
        try:
            ws = self.open_workspace()
        except ConfigError as exc:
            log.error("config %s does not validate (%s); the last good config keeps running", self.config_path, reason)
            self.metrics.reloads.labels("rejected").inc()
            self._config_state(exc.problems)
            return False
        old = self.config
        if ws.config.database_url != old.database_url:
            log.warning("database changed in %s: restart the daemon to use it (still on %s)",
                        self.config_path, self.store.safe_url)
        if ws.config.daemon.http != old.daemon.http:
            log.warning("daemon.http changed: restart the daemon to listen on %s", ws.config.daemon.http)
        suites = {**self.ws.suites, **ws.suites} if ws.problems else ws.suites
        self.ws = Workspace(ws.config, suites, ws.problems, ws.sim, ws.warnings)
        self.notifier = alerts.notifier_from_config(ws.config.alerts)
        self.control.lease = ws.config.daemon.lease
        self.heartbeat.url = ws.config.daemon.heartbeat_url
        self.retries.forget_models({m.name for m in ws.config.models})
        self._update_secrets()
        self.files.applied_now(self.config.prompts_dir)  # the new prompts directory, if it moved
        if self.scheduler is not None:
            self.install_jobs(self.scheduler)
        self.metrics.reloads.labels("applied").inc()
        log.info("config reloaded (%s): %d models, %d suites", reason, len(ws.config.models), len(suites))
        self._warn(ws.warnings)
        self._config_state(ws.problems)
        return True

    @staticmethod
    def _warn(warnings: list[str]) -> None:
        """What `canary validate` warns about (a turn without a reference, a case regex slow on a
        long reply), logged once each time the suites are loaded: they run, but may mislead."""
        for w in warnings:
            log.warning("suites: %s", w)

    def _config_state(self, problems: list[str]) -> None:
        """Log each problem; /healthz and the config_error alert say so while there are some."""
        self.health.config_problems = list(problems)
        self.metrics.config_ok.set(0 if problems else 1)
        for p in problems:
            log.error("config: %s", p)
        if self.connected:
            try:
                self.self_alerts.config_state(self.store, problems, self.config_path, self.clock())
            except Exception as exc:
                log.error("the config_error alert could not be written: %s", failure_text(exc))

    def _update_secrets(self) -> None:
        if self.redactor is not None:
            self.redactor.update(redact.secret_env_names(self.config), self.config.database_url,
                                 also=[self.store.url])  # the database in use, if a reload named another

    # --- lifecycle ----------------------------------------------------------------------------

    def install_jobs(self, scheduler: AsyncIOScheduler) -> None:
        """One cron job per model (replacing the previous config's)."""
        for job in scheduler.get_jobs():
            if job.id.startswith("model:"):
                job.remove()
        grace = max(int(self.config.daemon.catch_up.total_seconds()), 60)
        for m in self.config.models:
            scheduler.add_job(self.on_cron, self.trigger(m, jitter=True), args=[m.name], id=f"model:{m.name}",
                              name=f"{m.name}: {m.schedule or self.config.schedule}", replace_existing=True,
                              misfire_grace_time=grace, coalesce=True, max_instances=1)

    def make_scheduler(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=ZoneInfo(self.config.timezone))
        self.install_jobs(scheduler)
        start = datetime.now(timezone.utc)
        scheduler.add_job(self.tick, "interval", seconds=self.tick_seconds, id="tick", next_run_time=start,
                          coalesce=True, max_instances=1, misfire_grace_time=None)
        scheduler.add_job(self.deliver, "interval", seconds=DELIVER_SECONDS, id="deliver", next_run_time=start,
                          coalesce=True, max_instances=1, misfire_grace_time=None)
        return scheduler

    def close(self) -> None:
        self.store.close()
        if self._lock:
            self._lock.release()

