"""Slots: when a model is due, which runs were abandoned, and claiming a run for one replica.

A slot is (model, suite, scheduled time, kind). A replica claims it by inserting its unique
run row before anything runs, or takes over a run that was abandoned: interrupted, silent
for longer than the lease, or held by an owner that is provably gone (owner ids are
hostname:pid:random; a process of this host that no longer runs is gone, and so is the
owner of a scheduled run when this daemon holds the SQLite single-daemon lock: only a
daemon runs scheduled slots, while a confirmation run may be a live `canary run`'s). A manual run (`canary run`)
abandoned so is marked interrupted, never resumed behind its user's back.
Everything here reads the time it is given, never the wall clock.
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url

from .config import Config, ModelConfig, cron_trigger
from .errors import UsageError
from .runner import Clock, Job, planned_samples, utcnow
from .store import Store

OwnerGone = Callable[[str | None, str], bool]  # (owner, kind of run) -> gone?

if TYPE_CHECKING:  # the scheduler is imported by what schedules (the daemon), not by `canary run`
    from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger("canary.daemon")


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc)


def _naive(dt: datetime) -> datetime:
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def model_trigger(config: Config, model: ModelConfig, *, jitter: bool = False) -> CronTrigger:
    """The model's cron trigger in the config's time zone (with `daemon.jitter` if asked)."""
    trigger = cron_trigger(model.schedule or config.schedule, ZoneInfo(config.timezone))
    if jitter and config.daemon.jitter:
        trigger.jitter = config.daemon.jitter.total_seconds()
    return trigger


def latest_fire(trigger: CronTrigger, now: datetime, earliest: datetime) -> datetime | None:
    """The latest fire time of a jitter-free trigger within [earliest, now], naive UTC."""
    span = timedelta(minutes=1)
    while True:
        start = max(now - span, earliest)
        fire, last = trigger.get_next_fire_time(None, _aware(start)), None
        while fire is not None and _naive(fire) <= now:
            last, fire = fire, trigger.get_next_fire_time(fire, fire)
        if last is not None:
            return _naive(last)
        if start <= earliest:
            return None
        span *= 8


def clock_from_env(once: bool, env=os.environ) -> Clock:
    """The real clock, or (test and backfill hook, --once only) one that starts at $CANARY_NOW."""
    value = env.get("CANARY_NOW")
    if not value:
        return utcnow
    if not once:
        raise UsageError("CANARY_NOW (a start time for the clock) only works with `canary daemon --once`")
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"CANARY_NOW '{value}' is not an ISO 8601 time") from None
    start = _naive(start) if start.tzinfo else start
    t0 = time.monotonic()
    log.warning("CANARY_NOW is set: this run's clock starts at %s UTC, not at the real time", start.isoformat())
    return lambda: start + timedelta(seconds=time.monotonic() - t0)


class SqliteLock:
    """An advisory lock file beside a SQLite database: one daemon per file (flock dies with its holder)."""

    def __init__(self, database_url: str):
        url = make_url(database_url)
        file = url.database if url.get_backend_name() == "sqlite" else None
        if file and file.startswith("file:"):  # a SQLite URI (?mode=ro&uri=true): its path
            file = file[len("file:"):]
        self.path = Path(file + ".daemon.lock") if file and file != ":memory:" else None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """This process holds the lock: no other daemon uses the database."""
        return self._fd is not None

    def acquire(self, owner: str) -> None:
        """Take the lock (UsageError: another daemon holds it; OSError: its directory is missing, say)."""
        if self.path is None or self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 300).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(
                f"another canary daemon ({holder}) is already running on this SQLite database "
                f"(lock {self.path}). SQLite is for a single daemon: stop the other one, or use "
                "PostgreSQL to run replicas.") from None
        os.ftruncate(fd, 0)
        os.write(fd, owner.encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def repeated_wall_time(trigger: CronTrigger, slot: datetime) -> bool:
    """True for the second fire of a wall-clock time in the hour repeated when clocks go back
    (APScheduler fires "30 2 * * *" twice that night in Europe/Paris; cron runs it once)."""
    tz = trigger.timezone
    local = _aware(slot).astimezone(tz).replace(tzinfo=None)
    fire = trigger.get_next_fire_time(None, _aware(slot - timedelta(hours=2)))
    while fire is not None and _naive(fire) < slot:
        if fire.astimezone(tz).replace(tzinfo=None) == local:
            return True
        fire = trigger.get_next_fire_time(fire, fire)
    return False


def due_slots(config: Config, now: datetime) -> list[tuple[str, datetime]]:
    """The catch-up rule: each model's latest slot within `catch_up` (it runs unless complete)."""
    found = []
    for m in config.models:
        trigger = model_trigger(config, m)
        slot = latest_fire(trigger, now, now - config.daemon.catch_up)
        if slot is not None and not repeated_wall_time(trigger, slot):
            found.append((m.name, slot))
    return found


def process_gone(owner: str | None, me: str) -> bool:
    """True when `owner` (hostname:pid:random) was a process of this host that no longer runs:
    its PID is dead, or it is ours while the owner is not us (a restarted container's PID 1)."""
    parts = (owner or "").rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit() or owner == me:
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's process
        return False
    return False


def _abandoned(row, now: datetime, lease: timedelta, gone: OwnerGone) -> bool:
    return row.status == "interrupted" or (row.status == "running" and (
        row.heartbeat_at is None or row.heartbeat_at < now - lease or gone(row.owner, row.kind)))


def abandoned_runs(store: Store, config: Config, now: datetime,
                   gone: OwnerGone = lambda owner, kind: False) -> list[tuple[str, datetime, str]]:
    """(model, slot, kind) of unfinished scheduled or confirm runs within `catch_up` that no live replica holds."""
    d = config.daemon
    unfinished = store.unfinished_runs([m.name for m in config.models], ("scheduled", "confirm"), since=now - d.catch_up)
    found = {(r.model, r.slot, r.kind) for r in unfinished if _abandoned(r, now, d.lease, gone)}
    return sorted(found, key=lambda r: (r[1], r[2] != "scheduled", r[0]))  # a slot before its confirmation


def interrupt_orphans(store: Store, now: datetime, lease: timedelta, gone: OwnerGone) -> list:
    """Mark `interrupted` (its counters computed from its samples) every manual run left `running`
    by a process that is gone or silent for longer than the lease; returns those runs."""
    orphans = [r for r in store.unfinished_runs(None, ("manual",), statuses=("running",))
               if _abandoned(r, now, lease, gone)]
    return [row for r in orphans if (row := store.interrupt(r.id, r.owner, now)) is not None]


def resumable(store: Store, jobs: list[Job]) -> list[tuple[Job, object]]:
    """For each manual job, the latest interrupted manual run of its model and suite version, if
    any: the job then continues that run (its slot, its repeat), running only missing samples."""
    out = []
    for job in jobs:
        row = store.latest_interrupted(job.model.name, job.suite.name, job.suite.version)
        if row is not None:
            cases = len(job.suite.cases)
            repeat = row.planned // cases if cases and row.planned % cases == 0 else job.repeat
            job = Job(job.model, job.suite, repeat, row.slot, job.kind)
        out.append((job, row))
    return out


def claim(store: Store, config: Config, jobs: list[Job], owner: str, now: datetime,
          gone: OwnerGone = lambda owner, kind: False) -> list[Job]:
    """Claim each job's run for `owner`, atomically in the database: insert its row (a new slot;
    never a confirmation run, which only its parent's owner creates) or take over an abandoned
    one (interrupted, a heartbeat older than the lease, or an owner that is gone). Returns the
    jobs won; a run that is complete, budget_exhausted or held by a live replica is left alone."""
    stale = now - config.daemon.lease
    won = []
    for job in jobs:
        run_id = None
        if job.kind != "confirm":
            run_id = store.create_run(
                model=job.model.name, suite=job.suite.name, suite_version=job.suite.version, slot=job.slot,
                kind=job.kind, planned=len(planned_samples(job.suite, job.repeat)), owner=owner, now=now)
        if run_id is None:
            row = store.find_run(job.model.name, job.suite.name, job.slot, job.kind)
            if row is None or not store.take_over(row.id, owner, now, unless_heartbeat_after=stale,
                                                  or_owner=row.owner if gone(row.owner, row.kind) else None):
                continue
        won.append(job)
    return won
