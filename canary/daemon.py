"""`canary daemon`: a thin APScheduler layer over `monitor.run_and_watch`, the function `canary run` calls.

One cron job per model (its `schedule` or the global one, in `timezone`, with optional
jitter) runs the model's latest slot. A slot is (model, suite, scheduled time, kind); a
replica claims it by inserting its unique run row before it runs anything, so several
daemons on one PostgreSQL share the work and none runs a slot twice. A run whose heartbeat
is older than `daemon.lease` was abandoned (its replica died): the next tick of any replica
takes it over and `runner.run_jobs` runs only its missing samples. At start, each model's latest slot within `catch_up`
runs at once unless complete (the catch-up rule); `--once` does just that, then exits.

Besides the model jobs there are two: `tick` every few seconds (health snapshot, config
files changed on disk, abandoned runs) and `deliver` every 30 s (the alert outbox, so a
Slack outage is retried). SIGTERM/SIGINT stop scheduling, let samples in flight finish
within `shutdown_grace`, mark unfinished runs interrupted and exit 0; SIGHUP reloads.
Time is a parameter: every decision reads `clock()` (naive UTC), never the wall clock.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from . import alerts, logs, messages
from .config import Config, ModelConfig, find_config
from .errors import CanaryError, ConfigError
from .monitor import Watch, run_and_watch, watch
from .report_html import render_report
from .reports import next_run
from .runner import Clock, Control, Job, ProviderFactory, RunSummary, jobs_for, make_provider, owner_id, utcnow
from .slots import (SqliteLock, _aware, abandoned_runs, claim, clock_from_env, due_slots, latest_fire, model_trigger,
                    repeated_wall_time)
from .web import Metrics, WebServer, parse_address
from .workspace import Workspace, open_workspace

log = logging.getLogger("canary.daemon")

TICK_SECONDS = 5.0  # health snapshot, config files on disk, abandoned runs
DELIVER_SECONDS = 30.0  # the alert outbox
NO_CONFIG = ("", "")  # (model, suite) of alerts about canary itself


class Daemon:
    """The scheduler of one replica. Every method that decides reads `clock`; tests drive it directly."""

    def __init__(self, config_path=None, *, clock: Clock = utcnow, provider_factory: ProviderFactory = make_provider,
                 owner: str | None = None, tick: float = TICK_SECONDS, lock: bool = False,
                 redactor: logs.RedactSecrets | None = None):
        self.config_path = find_config(config_path).resolve()
        self.clock, self.provider_factory, self.tick_seconds = clock, provider_factory, tick
        self.owner = owner or owner_id()
        self.redactor = redactor
        self.ws: Workspace = self.open_workspace()  # ConfigError: no good config to start from
        self._lock = SqliteLock(self.ws.database_url) if lock else None
        if self._lock:
            self._lock.acquire(self.owner)
        self.store = self.ws.store()
        self.control = Control(lease=self.config.daemon.lease, owner=self.owner)
        self.metrics = Metrics(lambda: self.store)
        self.notifier = alerts.notifier_from_config(self.config.alerts)
        self.scheduler: AsyncIOScheduler | None = None
        self.web: WebServer | None = None
        self.last_tick: datetime | None = None
        self.config_ok = True
        self.failed: dict[str, str] = {}  # slot -> why it failed (a model's key unset, ...): health, --once
        self._applied = self._seen = self._files()
        self._tasks: set[asyncio.Task] = set()
        self._active: set[tuple[str, datetime, str]] = set()
        self._model_locks: dict[str, asyncio.Lock] = {}
        self._last_sweep: datetime | None = None
        self._stopping: asyncio.Event | None = None
        self._update_secrets()
        self._config_state(self.ws.problems)

    @property
    def config(self) -> Config:
        return self.ws.config

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
        return abandoned_runs(self.store, self.config, now or self.clock())

    def claim(self, jobs: list[Job], now: datetime) -> list[Job]:
        return claim(self.store, self.config, jobs, self.owner, now)

    async def run_slot(self, model: str, slot: datetime, kind: str = "scheduled") -> Watch | None:
        """Run or resume one model's slot: each suite not complete and not held by a live replica."""
        key = (model, slot, kind)
        name = f"{model} {slot.isoformat()} ({kind})"
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
                jobs = self.claim(jobs, self.clock())
                if not jobs:
                    log.info("slot %s %s (%s): already claimed (complete, or held by another replica)",
                             model, slot.isoformat(), kind)
                    self.metrics.slots.labels(model, "skipped").inc()
                    return None
                log.info("slot %s %s (%s): running %s", model, slot.isoformat(), kind,
                         ", ".join(j.suite.name for j in jobs), extra={"model": model, "slot": slot.isoformat()})
                watch = await run_and_watch(self.store, ws.config, jobs, clock=self.clock, control=self.control,
                                            notifier=self.notifier, provider_factory=self.provider_factory,
                                            on_sample=self._on_sample)
                self._record(kind, jobs, watch)
                self.failed.pop(name, None)
                return watch
        except CanaryError as exc:
            self._failure(name, str(exc))
        except Exception as exc:
            log.exception("slot %s failed", name)
            self._failure(name, f"{type(exc).__name__}: {exc}")
        finally:
            self._active.discard(key)
        self.metrics.slots.labels(model, "failed").inc()
        return None

    def _failure(self, name: str, why: str) -> None:
        """Log a slot's failure once (the sweep retries it every few seconds); /healthz lists it."""
        if self.failed.get(name) != why:
            log.error("slot %s failed: %s", name, why)
        self.failed[name] = why

    def launch(self, model: str, slot: datetime, kind: str = "scheduled") -> asyncio.Task:
        """Run a slot in a task of this daemon (never one of APScheduler's, which shutdown would cancel)."""
        task = asyncio.get_running_loop().create_task(self.run_slot(model, slot, kind),
                                                      name=f"canary {model} {slot.isoformat()} {kind}")
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
        the lease, so their owner is not about to): confirm, act and deliver now."""
        d = self.config.daemon
        rows = self.store.unassessed([m.name for m in self.config.models], since=now - d.catch_up,
                                     finished_before=now - d.lease)
        tasks = []
        for row in rows:
            key = (row.model, row.slot, "judge")
            if key in self._active:
                continue
            self._active.add(key)
            task = asyncio.get_running_loop().create_task(self._judge(row, key), name=f"canary judge {row.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            tasks.append(task)
        return tasks

    async def _judge(self, row, key) -> None:
        try:
            async with self._model_locks.setdefault(row.model, asyncio.Lock()):
                ws = self.ws
                jobs = jobs_for(ws.config, ws.suites, models=[row.model], slot=row.slot, kind="scheduled")
                jobs = [j for j in jobs if j.suite.name == row.suite]
                if not jobs:
                    return
                log.info("judging run %s (%s %s %s), finished but never judged", row.id, row.model, row.suite,
                         row.slot.isoformat())
                await watch(self.store, ws.config, jobs, [RunSummary.of(row)], clock=self.clock,
                            control=self.control, notifier=self.notifier, provider_factory=self.provider_factory,
                            on_sample=self._on_sample)
        except Exception:
            log.exception("judging run %s failed", row.id)
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
        """Every few seconds: the health snapshot, config files changed on disk, abandoned runs."""
        now = self.clock()
        self.last_tick = now
        self.metrics.last_tick.set(_aware(now).timestamp())
        if self.control.stopping:
            return
        try:
            self.check_reload()
            sweep_every = max(min(self.config.daemon.lease / 2, timedelta(seconds=30)),
                              timedelta(seconds=self.tick_seconds))
            if self._last_sweep is None or now - self._last_sweep >= sweep_every:
                self._last_sweep = now
                for model, slot, kind in await asyncio.to_thread(self.abandoned_runs, now):
                    if (model, slot, kind) not in self._active:
                        log.info("abandoned run found: %s %s (%s)", model, slot.isoformat(), kind)
                        self.launch(model, slot, kind)
                self.judge_unassessed(now)
        except Exception:  # the database is down, say: try again next tick
            log.exception("tick failed")

    async def deliver(self) -> None:
        """Send what is due in the alert outbox (retries of refused messages included)."""
        if self.control.stopping:
            return
        try:
            report = await asyncio.to_thread(alerts.deliver, self.store, self.notifier, now=self.clock(),
                                             owner=self.owner)
        except Exception:
            log.exception("alert delivery failed; retrying in %.0f s", DELIVER_SECONDS)
            return
        if report.sent or report.failed:
            log.info("alert outbox: %d sent, %d refused (will retry)", report.sent, report.failed)

    def report(self) -> str:
        """The page `canary report` writes: every series with its band and alerts."""
        return render_report(self.store, self.config, self.ws.suites, self.clock())

    def health(self) -> tuple[int, dict]:
        """(HTTP status, body) of /healthz: 503 when the database does not answer."""
        db = self.store.ping()
        now = self.clock()
        body = {
            "status": "ok" if db else "db_unreachable", "db": db,
            "last_tick": self.last_tick.isoformat() + "Z" if self.last_tick else None,
            "tick_age_s": round((now - self.last_tick).total_seconds(), 3) if self.last_tick else None,
            "owner": self.owner, "config": str(self.config_path), "config_ok": self.config_ok,
            "failing": [f"{k}: {v}" for k, v in self.failed.items()],
            "running": sorted(f"{m} {s.isoformat()} {k}" for m, s, k in list(self._active)),
            "next_runs": {m.name: (n.isoformat() + "Z") if (n := next_run(self.config, m, now)) else None
                          for m in self.config.models},
        }
        return (200 if db else 503), body

    # --- reload -------------------------------------------------------------------------------

    def _files(self) -> tuple:
        """(path, mtime, size) of canary.yaml, the prompts directory and each suite file."""
        folder = self.config.prompts_dir
        try:
            paths = [self.config_path, folder, *sorted(folder.glob("*.y*ml"))]
        except OSError:
            paths = [self.config_path, folder]
        out = []
        for path in paths:
            try:
                st = path.stat()
                out.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(path), None, None))
        return tuple(out)

    def check_reload(self) -> bool | None:
        """Reload when the files changed and then stayed the same for one poll (an editor's save
        is not read half-written). None: nothing to do; else whether the new config was applied."""
        files = self._files()
        if files != self._seen:
            self._seen = files
            return None
        if files == self._applied:
            return None
        return self.reload("files changed")

    def reload(self, reason: str = "SIGHUP") -> bool:
        """Load canary.yaml and the suites again: apply them if the config validates, else keep the
        last good config running (one config_error alert). A bad suite file: the good suites are
        applied, and a suite that disappeared with the bad file keeps its last good version."""
        self._applied = self._seen = self._files()
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
        self.ws = Workspace(ws.config, suites, ws.problems, ws.sim)
        self.notifier = alerts.notifier_from_config(ws.config.alerts)
        self.control.lease = ws.config.daemon.lease
        self._update_secrets()
        self._applied = self._seen = self._files()  # the new prompts directory, if it moved
        if self.scheduler is not None:
            self.install_jobs(self.scheduler)
        self.metrics.reloads.labels("applied").inc()
        log.info("config reloaded (%s): %d models, %d suites", reason, len(ws.config.models), len(suites))
        self._config_state(ws.problems)
        return True

    def _config_state(self, problems: list[str]) -> None:
        """Log each problem; one config_error alert while there are some, closed when there are none."""
        self.config_ok = not problems
        self.metrics.config_ok.set(0 if problems else 1)
        now = self.clock()
        if problems:
            for p in problems:
                log.error("config: %s", p)
            details = {"problems": problems[:50],
                       "reason": f"{len(problems)} problem(s) in {self.config_path} or its suites; "
                                 "the last good config keeps running"}
            alerts.open_alert(self.store, model=NO_CONFIG[0], suite=NO_CONFIG[1], kind="config_error", run_id=None,
                              details=details, message=messages.config_error(details), now=now)
            return
        for a in alerts.open_alerts(self.store, *NO_CONFIG):
            if a.kind == "config_error":
                alerts.close_alert(self.store, a.id, run_id=None, by="recovered", message=messages.config_error(None), now=now)

    def _update_secrets(self) -> None:
        if self.redactor is not None:
            self.redactor.update(logs.secret_env_names(self.config), self.config.database_url,
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

    def stop(self) -> None:
        """SIGTERM/SIGINT: stop scheduling; in-flight samples finish (a second signal: stop at once)."""
        if self._stopping is None:
            return
        if self._stopping.is_set():
            log.warning("second stop signal: cancelling the runs in flight now")
            for task in list(self._tasks):
                task.cancel()
            return
        log.info("stopping: no new slots or samples; samples in flight get up to %.0f s",
                 self.config.daemon.shutdown_grace.total_seconds())
        self._stopping.set()  # serve() shuts the scheduler down as soon as it wakes
        self.control.stop.set()

    def _begin(self, signals: bool) -> None:
        self._stopping = asyncio.Event()
        self.control.stop = asyncio.Event()
        if signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        try:
            self.reload("SIGHUP")
        except Exception:  # the database is down, say: the daemon keeps running
            log.exception("reload failed")

    async def _finish(self) -> None:
        """Wait for the runs in flight (up to the grace), cancel the rest, mark what is unfinished."""
        pending = set(self._tasks)
        if pending:  # the whole stop fits in the grace: a little of it is kept for the cancel and the marks
            grace = self.config.daemon.shutdown_grace.total_seconds()
            _done, pending = await asyncio.wait(pending, timeout=max(grace - 2.0, grace * 0.8))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        n = await asyncio.to_thread(self.store.mark_interrupted, self.owner, self.clock())
        if n:
            log.info("%d unfinished run(s) marked interrupted; the next daemon to start resumes them", n)

    async def serve(self, *, signals: bool = True) -> None:
        """Run until stop(): HTTP, the scheduler, the catch-up rule at start."""
        self._begin(signals)
        if self.config.daemon.http:
            host, port = parse_address(self.config.daemon.http)
            self.web = WebServer(host, port, self.metrics, self.health, report=self.report).start()
            log.info("HTTP on %s (/healthz, /metrics)", self.web.url)
        self.scheduler = self.make_scheduler()
        self.scheduler.start()
        log.info("daemon %s: %d models, database %s", self.owner, len(self.config.models), self.store.safe_url)
        self.catch_up()
        try:
            await self._stopping.wait()
        finally:
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            await self._finish()
            if self.web is not None:
                self.web.stop()
            log.info("daemon stopped")

    async def once(self, *, signals: bool = True) -> list[Watch]:
        """`--once`: abandoned runs and due slots (the catch-up rule), the outbox, then return."""
        self._begin(signals)
        tasks = self.catch_up()
        if tasks:
            stopped = asyncio.ensure_future(self._stopping.wait())
            pending = set(tasks)
            while pending and not stopped.done():
                await asyncio.wait(pending | {stopped}, return_when=asyncio.FIRST_COMPLETED)
                pending = {t for t in pending if not t.done()}
            stopped.cancel()
        watches = [t.result() for t in tasks if t.done() and not t.cancelled() and t.result() is not None]
        log.info("once: %d slot(s) due or abandoned, %d run", len(tasks), len(watches))
        if not self.control.stopping:
            await self.deliver()
        await self._finish()
        return watches

    def close(self) -> None:
        self.store.close()
        if self._lock:
            self._lock.release()


def run_daemon(config_path=None, *, once: bool = False, log_format: str = "human", make=Daemon) -> list[Watch]:
    """`canary daemon [--once]`: logging, the SQLite single-daemon lock, then serve (or one pass).
    `make` builds the daemon (`canary daemon --sim` passes its SimDaemon)."""
    redactor = logs.setup_logging(log_format)
    daemon = make(config_path, clock=clock_from_env(once), lock=True, redactor=redactor)
    try:
        if once:
            watches = asyncio.run(daemon.once())
            if daemon.failed:  # a cron job must notice: exit 2 with the reasons
                raise CanaryError(f"{len(daemon.failed)} slot(s) failed: " +
                                  "; ".join(f"{k}: {v}" for k, v in daemon.failed.items()))
            return watches
        asyncio.run(daemon.serve())
        return []
    finally:
        daemon.close()
