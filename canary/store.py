"""The one place that reads and writes the database: runs, samples, migrations, import/export.

SQLite (WAL, busy timeout) is the embedded default; PostgreSQL (psycopg 3) is for production.
Samples are written by a `SampleWriter` thread that commits every finished sample within
milliseconds (group commit), so the event loop never waits on the disk and a crash loses at
most the samples in flight.
"""
from __future__ import annotations

import queue
import statistics
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Iterable, Iterator

import re
from sqlalchemy import and_, create_engine, event, func, inspect, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, Row
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from .errors import StorageError
from .schema import acks, metadata, runs, samples, sensitivity

SAMPLE_COLUMNS = [c.name for c in samples.columns if c.name != "id"]


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    for short in ("postgres://", "postgresql://"):  # the common short forms mean psycopg 3 here
        if url.startswith(short):
            url = "postgresql+psycopg://" + url[len(short):]
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ArgumentError(f"canary stores its results in SQLite or PostgreSQL, not {backend}")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable)"


def alembic_config(connection=None):
    from alembic.config import Config as AlembicConfig
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("canary.migrations")))
    cfg.attributes["connection"] = connection
    return cfg


@dataclass
class CaseCount:
    """One case's samples in one run (or pooled over several)."""

    passed: int = 0
    failed: int = 0
    errors: int = 0

    @property
    def answered(self) -> int:
        return self.passed + self.failed

    def __add__(self, other: "CaseCount") -> "CaseCount":
        return CaseCount(self.passed + other.passed, self.failed + other.failed, self.errors + other.errors)


_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([^'\"\s]*)['\"]?", re.M)


def head_revisions() -> set[str]:
    """The head revision(s) of migrations/, read from the scripts' text without importing alembic."""
    revisions, parents = set(), set()
    for script in (resources.files("canary.migrations") / "versions").iterdir():
        if script.name.endswith(".py") and not script.name.startswith("_"):
            for key, value in _REVISION.findall(script.read_text(encoding="utf-8")):
                (revisions if key == "revision" else parents).add(value)
    return revisions - parents


def current_revisions(conn) -> set[str]:
    """The revision(s) the database is at (empty for a new database)."""
    if not inspect(conn).has_table("alembic_version"):
        return set()
    return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


class Store:
    def __init__(self, url: str, *, upgrade: bool = True):
        self.url = url
        try:
            self.engine = make_engine(url)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise StorageError(f"cannot use database URL {_hide_password(url)}: {exc} (use sqlite:///path.db "
                               "or postgresql+psycopg://user@host/db)") from None
        self.dialect = self.engine.dialect.name
        if upgrade:
            self.upgrade()

    # --- lifecycle -----------------------------------------------------------------------

    def upgrade(self) -> None:
        """Apply every pending migration (serialised across replicas on PostgreSQL).

        A database already at the head revision costs one query: alembic is imported only
        when there is something to apply."""
        try:
            with self.engine.connect() as conn:
                if current_revisions(conn) == head_revisions():
                    return
                conn.rollback()  # end the check's implicit transaction before migrating
                if self.dialect == "sqlite":
                    # SQLite alters a table by copying it and dropping the old one: with foreign
                    # keys on, that drop would cascade into the samples (set outside a transaction)
                    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                    conn.commit()
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(7714390215)"))
                    from alembic import command
                    command.upgrade(alembic_config(conn), "head")
                if self.dialect == "sqlite":
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
        except OperationalError as exc:
            raise StorageError(f"cannot open the database {self.safe_url}: {exc.orig}") from None

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # any failure means "not reachable" to a health check
            return False

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self):
        with self.engine.begin() as conn:
            yield conn

    def _insert(self, table):
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # --- runs ------------------------------------------------------------------------------

    def create_run(self, *, model: str, suite: str, suite_version: str, slot: datetime, kind: str,
                   planned: int, owner: str | None, now: datetime) -> int | None:
        """Claim a run by inserting its unique row; None when that slot already has one."""
        stmt = self._insert(runs).values(
            model=model, suite=suite, suite_version=suite_version, slot=slot, kind=kind,
            status="running", owner=owner, heartbeat_at=now, started_at=now, planned=planned,
            passed=0, failed=0, errors=0, input_tokens=0, output_tokens=0,
        ).on_conflict_do_nothing().returning(runs.c.id)
        with self.engine.begin() as conn:
            return conn.execute(stmt).scalar()

    def run(self, run_id: int) -> Row | None:
        with self.engine.connect() as conn:
            return conn.execute(select(runs).where(runs.c.id == run_id)).first()

    def find_run(self, model: str, suite: str, slot: datetime, kind: str) -> Row | None:
        with self.engine.connect() as conn:
            return conn.execute(select(runs).where(and_(
                runs.c.model == model, runs.c.suite == suite, runs.c.slot == slot, runs.c.kind == kind))).first()

    def take_over(self, run_id: int, owner: str, now: datetime, *, unless_heartbeat_after: datetime | None) -> bool:
        """Become the owner of an unfinished run (a stale one, or one this owner holds, when a lease is given)."""
        cond = and_(runs.c.id == run_id, runs.c.status.in_(["running", "interrupted"]))
        if unless_heartbeat_after is not None:
            cond = and_(cond, (runs.c.heartbeat_at < unless_heartbeat_after) | (runs.c.status == "interrupted")
                        | (runs.c.owner == owner))
        with self.engine.begin() as conn:
            done = conn.execute(update(runs).where(cond).values(
                owner=owner, heartbeat_at=now, status="running")).rowcount
        return done == 1

    def heartbeat(self, run_id: int, owner: str, now: datetime) -> bool:
        """Refresh a held run's heartbeat; False when another replica has taken it over."""
        with self.engine.begin() as conn:
            return conn.execute(update(runs).where(and_(
                runs.c.id == run_id, runs.c.owner == owner, runs.c.status == "running"))
                .values(heartbeat_at=now)).rowcount == 1

    def spent_since(self, model: str, since: datetime) -> tuple[int, float]:
        """(tokens in + out, cost) of a model's samples finished since a time: for daily budgets."""
        q = (select(func.coalesce(func.sum(samples.c.input_tokens + samples.c.output_tokens), 0),
                    func.coalesce(func.sum(samples.c.cost), 0.0))
             .join_from(samples, runs, samples.c.run_id == runs.c.id)
             .where(and_(runs.c.model == model, samples.c.finished_at >= since)))
        with self.engine.connect() as conn:
            tokens, cost = conn.execute(q).one()
        return int(tokens), float(cost)

    def done_samples(self, run_id: int) -> set[tuple[str, int]]:
        with self.engine.connect() as conn:
            return {(r.case_id, r.sample) for r in conn.execute(
                select(samples.c.case_id, samples.c.sample).where(samples.c.run_id == run_id))}

    def finish_run(self, run_id: int, status: str, now: datetime) -> Row:
        """Close a run: its counts, tokens, cost and p50 latency, recomputed from its samples."""
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                status=status, finished_at=now, **self._aggregates(conn, run_id)))
            return conn.execute(select(runs).where(runs.c.id == run_id)).one()

    def _aggregates(self, conn, run_id: int) -> dict[str, Any]:
        rows = conn.execute(select(samples.c.status, samples.c.input_tokens, samples.c.output_tokens,
                                   samples.c.cost, samples.c.latency_ms, samples.c.reported_model)
                            .where(samples.c.run_id == run_id)).all()
        counts = Counter(r.status for r in rows)
        answered = [r for r in rows if r.status != "error"]
        costs = [r.cost for r in rows if r.cost is not None]
        models = Counter(r.reported_model for r in answered if r.reported_model)
        return {
            "passed": counts["passed"], "failed": counts["failed"], "errors": counts["error"],
            "input_tokens": sum(r.input_tokens for r in rows),
            "output_tokens": sum(r.output_tokens for r in rows),
            "cost": sum(costs) if costs else None,
            "latency_p50_ms": statistics.median(latencies) if (latencies := [
                r.latency_ms for r in answered if r.latency_ms is not None]) else None,
            "reported_model": models.most_common(1)[0][0] if models else None,
        }

    def mark_assessed(self, run_ids: Iterable[int], now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id.in_(list(run_ids))).values(assessed_at=now))

    def unassessed(self, models: list[str], *, since: datetime, finished_before: datetime) -> list[Row]:
        """Complete scheduled runs whose signals were never judged (their process died first)."""
        with self.engine.connect() as conn:
            return conn.execute(select(runs).where(and_(
                runs.c.model.in_(models), runs.c.kind == "scheduled", runs.c.status == "complete",
                runs.c.assessed_at.is_(None), runs.c.slot >= since, runs.c.finished_at < finished_before))
                .order_by(runs.c.slot, runs.c.id)).all()

    def mark_interrupted(self, owner: str, now: datetime) -> int:
        """Every run this replica still holds becomes `interrupted` (resumable)."""
        with self.engine.begin() as conn:
            ids = conn.execute(select(runs.c.id).where(and_(runs.c.owner == owner, runs.c.status == "running"))).scalars().all()
            for run_id in ids:
                conn.execute(update(runs).where(runs.c.id == run_id).values(
                    status="interrupted", finished_at=now, **self._aggregates(conn, run_id)))
        return len(ids)

    def series(self, model: str, suite: str, *, kinds: Iterable[str] = ("scheduled", "manual", "confirm"),
               statuses: Iterable[str] = ("complete",), limit: int | None = None) -> list[Row]:
        """Runs of one (model, suite), oldest first."""
        q = (select(runs).where(and_(runs.c.model == model, runs.c.suite == suite,
                                     runs.c.kind.in_(list(kinds)), runs.c.status.in_(list(statuses))))
             .order_by(runs.c.slot.desc(), runs.c.id.desc()))
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return list(reversed(conn.execute(q).all()))

    def latest_runs(self) -> list[Row]:
        """The latest run of every (model, suite) series (calibration runs are not the series')."""
        newest = select(runs.c.model, runs.c.suite, func.max(runs.c.id).label("id")) \
            .where(runs.c.kind != "calibrate").group_by(runs.c.model, runs.c.suite).subquery()
        with self.engine.connect() as conn:
            return conn.execute(select(runs).join(newest, runs.c.id == newest.c.id)
                                .order_by(runs.c.model, runs.c.suite)).all()

    def case_counts(self, run_ids: Iterable[int]) -> dict[int, dict[str, CaseCount]]:
        """Per run, per case: how many samples passed, failed and errored (cases are the unit
        that compare, detection and `canary failures` reason about, not pooled samples)."""
        out: dict[int, dict[str, CaseCount]] = {}
        ids = list(run_ids)
        if not ids:
            return out
        q = (select(samples.c.run_id, samples.c.case_id, samples.c.status, func.count())
             .where(samples.c.run_id.in_(ids)).group_by(samples.c.run_id, samples.c.case_id, samples.c.status))
        with self.engine.connect() as conn:
            for run_id, case_id, status, n in conn.execute(q):
                count = out.setdefault(run_id, {}).setdefault(case_id, CaseCount())
                field = status if status in ("passed", "failed") else "errors"
                setattr(count, field, getattr(count, field) + n)
        return out

    def error_classes(self, run_ids: Iterable[int]) -> dict[str, int]:
        """How many samples of these runs errored, per error class, most frequent first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(samples.c.error).where(and_(
                samples.c.run_id.in_(list(run_ids)), samples.c.status == "error"))).scalars().all()
        return dict(Counter(rows).most_common())

    def failed_turns(self, run_ids: Iterable[int], cases: Iterable[str]) -> list[tuple[str, list]]:
        """(case id, turns) of every failed sample of these runs among these cases."""
        q = (select(samples.c.case_id, samples.c.turns)
             .where(and_(samples.c.run_id.in_(list(run_ids)), samples.c.status == "failed",
                         samples.c.case_id.in_(list(cases))))
             .order_by(samples.c.case_id, samples.c.run_id, samples.c.sample))
        with self.engine.connect() as conn:
            return [(r.case_id, r.turns) for r in conn.execute(q)]

    # --- acks ------------------------------------------------------------------------------

    def last_ack(self, model: str, suite: str) -> int | None:
        """The run the series' last `canary ack` accepted (its baseline and reference restart there)."""
        with self.engine.connect() as conn:
            return conn.execute(select(acks.c.run_id).where(and_(acks.c.model == model, acks.c.suite == suite))
                                .order_by(acks.c.id.desc()).limit(1)).scalar()

    def add_ack(self, model: str, suite: str, run_id: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(acks.insert().values(model=model, suite=suite, run_id=run_id, at=now))

    # --- sensitivity (what status shows: the smallest drop caught) ----------------------------

    def sensitivities(self) -> dict[tuple[str, str, str, str], Row]:
        """Every cached sensitivity, by (model, suite, suite_version, settings)."""
        with self.engine.connect() as conn:
            return {(r.model, r.suite, r.suite_version, r.settings): r for r in conn.execute(select(sensitivity))}

    def save_sensitivity(self, *, model: str, suite: str, suite_version: str, settings: str,
                         min_drop: float | None, trials: int, source: str, now: datetime) -> None:
        """Insert or replace the cached sensitivity of one series, suite version and settings."""
        values = dict(min_drop=min_drop, trials=trials, source=source, computed_at=now)
        stmt = self._insert(sensitivity).values(model=model, suite=suite, suite_version=suite_version,
                                                settings=settings, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["model", "suite", "suite_version", "settings"], set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def run_samples(self, run_id: int) -> list[Row]:
        with self.engine.connect() as conn:
            return conn.execute(select(samples).where(samples.c.run_id == run_id)
                                .order_by(samples.c.case_id, samples.c.sample)).all()

    # --- samples -----------------------------------------------------------------------------

    def insert_samples(self, rows: list[dict], conn=None) -> int:
        """Insert samples in one transaction; one already stored (same run, case, index) is skipped."""
        if not rows:
            return 0
        if conn is None:
            with self.engine.begin() as conn:
                return self.insert_samples(rows, conn)
        stmt = self._insert(samples).on_conflict_do_nothing().returning(samples.c.id)
        return len(conn.execute(stmt, rows).all())

    # --- export / import ---------------------------------------------------------------------

    def export_rows(self, *, model: str | None = None, suite: str | None = None,
                    since: datetime | None = None) -> Iterator[dict]:
        """Every stored sample with its run's fields (run columns prefixed `run_`), oldest first, streamed."""
        cols = [c.label(f"run_{c.name}") for c in runs.columns] + [c for c in samples.columns if c.name != "id"]
        q = select(*cols).join_from(runs, samples, samples.c.run_id == runs.c.id)
        if model:
            q = q.where(runs.c.model == model)
        if suite:
            q = q.where(runs.c.suite == suite)
        if since:
            q = q.where(runs.c.slot >= since)
        q = q.order_by(runs.c.slot, runs.c.id, samples.c.case_id, samples.c.sample)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=500).execute(q):
                yield row._asdict()

    def ensure_run(self, conn, *, model, suite, suite_version, slot, kind, status, started_at,
                   finished_at, planned, in_alert=False) -> int:
        """Find or create a run row (import): returns its id."""
        found = conn.execute(select(runs.c.id).where(and_(
            runs.c.model == model, runs.c.suite == suite, runs.c.slot == slot, runs.c.kind == kind))).scalar()
        if found is not None:
            return found
        return conn.execute(runs.insert().values(
            model=model, suite=suite, suite_version=suite_version, slot=slot, kind=kind, status=status,
            started_at=started_at, finished_at=finished_at, planned=planned, passed=0, failed=0, errors=0,
            input_tokens=0, output_tokens=0, in_alert=in_alert,
            assessed_at=finished_at if status == "complete" else None).returning(runs.c.id)).scalar()

    def refresh_runs(self, conn, run_ids: Iterable[int]) -> None:
        for run_id in run_ids:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**self._aggregates(conn, run_id)))


class SampleWriter:
    """A thread that commits finished samples as they come (group commit), in order.

    A sample is committed at most `linger` seconds after it finished: a crash loses at most
    those, and one commit serves every sample that finished in that window.
    """

    def __init__(self, store: Store, linger: float = 0.02):
        self.store = store
        self.linger = linger
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="canary-sample-writer", daemon=True)
        self._thread.start()

    def put(self, row: dict) -> None:
        if self._error:
            raise StorageError(f"storing samples failed: {self._error}")
        self._queue.put(row)

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.linger
            while batch[-1] is not None:  # gather what finishes in the next few ms: one commit
                try:
                    batch.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0)))
                except queue.Empty:
                    break
            stop = batch[-1] is None
            rows = [r for r in batch if r is not None]
            try:
                self.store.insert_samples(rows)
            except Exception as exc:  # kept and raised to the runner on its next put/close
                self._error = exc

    def close(self) -> None:
        """Commit everything queued, then stop."""
        self._queue.put(None)
        self._thread.join()
        if self._error:
            raise StorageError(f"storing samples failed: {self._error}")


__all__ = ["Store", "SampleWriter", "CaseCount", "SAMPLE_COLUMNS", "metadata", "runs", "samples"]
