"""The database: its connection, migrations and every write (runs, samples, acks, import).
The reads of the stored history are in queries.py and reads.py, which Store inherits.

SQLite (WAL, a busy timeout of 30 s or the URL's `?timeout=SECONDS`) is the embedded
default; PostgreSQL (psycopg 3) is for production. A database that fails (unreachable,
read-only, full) raises StorageError or SQLAlchemy's DBAPIError; `failure_text` says why
in one line, without the SQL or its parameters.
A run's samples reach `insert_samples` through the sample writer (writer.py); what a
sample holds came from an API, so it is stored as `storable` (storable.py) makes it:
secrets redacted, and nothing the database would refuse.
"""
from __future__ import annotations

import statistics
from collections import Counter
from contextlib import contextmanager
from functools import cached_property, lru_cache
from datetime import datetime
from importlib import resources
from typing import Any, Iterable, Iterator

from sqlalchemy import and_, create_engine, event, func, inspect, select, text, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from . import redact
from .errors import ConfigError, StorageError
from .dbapi import SQLITE_BUSY_TIMEOUT, head_revisions
from .queries import HistoryQueries
from .reads import CASE_FIELD, driver_sql
from .schema import acks, metadata, runs, samples, sensitivity
from .storable import storable


def _sqlite_pragmas(busy_timeout: float):
    def set_pragmas(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
    return set_pragmas


def failure_text(exc: BaseException) -> str:
    """Why the database refused, in one line: the driver's message, never the SQL or its parameters."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines()
    return lines[0].strip() if lines else type(orig).__name__


def is_database_failure(exc: BaseException) -> bool:
    return isinstance(exc, (DBAPIError, StorageError))


def make_engine(url: str) -> Engine:
    for short in ("postgres://", "postgresql://"):  # the common short forms mean psycopg 3 here
        if url.startswith(short):
            url = "postgresql+psycopg://" + url[len(short):]
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ArgumentError(f"canary stores its results in SQLite or PostgreSQL, not {backend}")
    if url.startswith("sqlite"):
        timeout = float(make_url(url).query.get("timeout", SQLITE_BUSY_TIMEOUT))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeout})
        event.listen(engine, "connect", _sqlite_pragmas(timeout))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(connection=None):
    from alembic.config import Config as AlembicConfig
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("canary.migrations")))
    cfg.attributes["connection"] = connection
    return cfg


SAMPLE_COLUMNS = [c for c in samples.columns if c.name != "id"]
SQLITE_ROWS_PER_INSERT = 256  # x 16 values, well under SQLite's 32,766 variables a statement
SQLITE_ANY_SIZE = 64  # up to this many rows go in as one statement of their own size


def _pieces(n: int) -> Iterator[int]:
    """n rows as statements: up to SQLITE_ANY_SIZE in one, more as 256 or 128 or 64 rows at a
    time and then the rest (100: 64, 36). The driver keeps the statements it prepared, per
    connection: with one statement per batch size, a busy daemon's commits of every size
    from 1 to 500 held some 115 MB of them; these are at most 66 texts, the large ones 3."""
    while n > SQLITE_ANY_SIZE:
        size = min(SQLITE_ROWS_PER_INSERT, 1 << (n.bit_length() - 1))
        yield size
        n -= size
    if n:
        yield n


@lru_cache(maxsize=None)
def _sqlite_insert(n: int) -> str:
    """INSERT of n samples in one statement, ON CONFLICT DO NOTHING: how samples go in on SQLite.
    One statement is one step of the engine, so the sample writer's thread gives up and takes
    back the GIL a few times a commit, not once a sample (executemany: once a row, each time
    taken back from the busy event loop), and an import pays one statement, not one a row."""
    row = f"({', '.join('?' * len(SAMPLE_COLUMNS))})"
    return (f"INSERT INTO samples ({', '.join(c.name for c in SAMPLE_COLUMNS)}) VALUES "
            f"{', '.join([row] * n)} ON CONFLICT DO NOTHING")


def current_revisions(conn) -> set[str]:
    """The revision(s) the database is at (empty for a new database)."""
    if not inspect(conn).has_table("alembic_version"):
        return set()
    return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


class Store(HistoryQueries):
    """The database: its connection, migrations and every write; the reads of the history are
    HistoryQueries' (queries.py) and SeriesReads' (reads.py), run through its engine."""

    refusals = (DBAPIError, StorageError)

    def __init__(self, url: str, *, upgrade: bool = True):
        self.url = url
        redact.remember([redact.database_password(url)])
        try:
            self.engine = make_engine(url)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise ConfigError([f"database: cannot use the URL {redact.hide_password(url)}: {exc} (use sqlite:///path.db "
                               "or postgresql+psycopg://user@host/db)"]) from None
        self.dialect = self.engine.dialect.name
        if upgrade:
            self.upgrade()

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(driver_sql(sql, self.dialect), params or None).all()

    def _execute(self, sql: str, params: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(driver_sql(sql, self.dialect), params)

    # --- lifecycle -----------------------------------------------------------------------

    def upgrade(self) -> None:
        """Apply every pending migration, serialised across processes: an advisory lock on
        PostgreSQL, the database's write lock on SQLite (BEGIN IMMEDIATE: the Python driver
        would run the DDL outside a transaction, so two processes creating a new file at once
        both created the tables and one failed). The one that waits finds nothing left to do.

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
                    else:
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                    from alembic import command
                    command.upgrade(alembic_config(conn), "head")
                if self.dialect == "sqlite":
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
        except DBAPIError as exc:
            raise StorageError(f"cannot open the database {self.safe_url}: {failure_text(exc)}") from None

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
        """INSERT with the dialect's ON CONFLICT (PostgreSQL's module loaded only when used)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

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

    def take_over(self, run_id: int, owner: str, now: datetime, *, unless_heartbeat_after: datetime | None,
                  or_owner: str | None = None) -> bool:
        """Become the owner of an unfinished run (when a lease is given: a stale one, one this owner
        holds, or one still held by `or_owner`, an owner known to be gone)."""
        cond = and_(runs.c.id == run_id, runs.c.status.in_(["running", "interrupted"]))
        if unless_heartbeat_after is not None:
            owners = [owner] + ([or_owner] if or_owner else [])
            cond = and_(cond, (runs.c.heartbeat_at < unless_heartbeat_after) | (runs.c.status == "interrupted")
                        | runs.c.owner.in_(owners))
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
        """(tokens in + out, cost) of a model's samples finished since a time: for daily budgets.

        The samples are found through their finish-time index, so the query reads the day's
        samples whatever the history (each joined to its run by primary key)."""
        todays = select(samples.c.run_id, samples.c.input_tokens, samples.c.output_tokens, samples.c.cost) \
            .where(samples.c.finished_at >= since).subquery()
        q = (select(func.coalesce(func.sum(todays.c.input_tokens + todays.c.output_tokens), 0),
                    func.coalesce(func.sum(todays.c.cost), 0.0))
             .join_from(todays, runs, todays.c.run_id == runs.c.id)
             .where(runs.c.model == model))
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
        """A run's counts, tokens, cost, p50 latency and reported model, from its samples (each
        unpacked by position: a Row finds a field by name only after a failed lookup)."""
        counts: Counter = Counter()
        cases: dict[str, list[int]] = {}
        tokens_in = tokens_out = 0
        costs: list[float] = []
        latencies: list[float] = []
        models: Counter = Counter()
        for case_id, status, n_in, n_out, cost, latency, model in conn.execute(
                select(samples.c.case_id, samples.c.status, samples.c.input_tokens, samples.c.output_tokens,
                       samples.c.cost, samples.c.latency_ms, samples.c.reported_model)
                .where(samples.c.run_id == run_id)):
            counts[status] += 1
            cases.setdefault(case_id, [0, 0, 0])[CASE_FIELD.get(status, 2)] += 1
            tokens_in += n_in
            tokens_out += n_out
            if cost is not None:
                costs.append(cost)
            if status != "error":
                if latency is not None:
                    latencies.append(latency)
                if model:
                    models[model] += 1
        return {
            "passed": counts["passed"], "failed": counts["failed"], "errors": counts["error"],
            "input_tokens": tokens_in, "output_tokens": tokens_out,
            "cost": sum(costs) if costs else None,
            "latency_p50_ms": statistics.median(latencies) if latencies else None,
            "reported_model": models.most_common(1)[0][0] if models else None,
            "cases": cases,
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

    def interrupt(self, run_id: int, owner: str | None, now: datetime) -> Row | None:
        """Mark one run `interrupted` (its counters from its samples) if `owner` still holds it running."""
        with self.engine.begin() as conn:
            held = and_(runs.c.id == run_id, runs.c.status == "running",
                        runs.c.owner.is_(None) if owner is None else runs.c.owner == owner)
            if not conn.execute(update(runs).where(held).values(
                    status="interrupted", finished_at=now, **self._aggregates(conn, run_id))).rowcount:
                return None
            return conn.execute(select(runs).where(runs.c.id == run_id)).one()

    def mark_interrupted(self, owner: str, now: datetime) -> int:
        """Every run this replica still holds becomes `interrupted` (resumable)."""
        with self.engine.begin() as conn:
            ids = conn.execute(select(runs.c.id).where(and_(runs.c.owner == owner, runs.c.status == "running"))).scalars().all()
            for run_id in ids:
                conn.execute(update(runs).where(runs.c.id == run_id).values(
                    status="interrupted", finished_at=now, **self._aggregates(conn, run_id)))
        return len(ids)

    # --- acks ------------------------------------------------------------------------------

    def add_ack(self, model: str, suite: str, run_id: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(acks.insert().values(model=model, suite=suite, run_id=run_id, at=now))

    # --- sensitivity (what status shows: the smallest drop caught) ----------------------------

    def save_sensitivity(self, *, model: str, suite: str, suite_version: str, settings: str,
                         min_drop: float | None, trials: int, source: str, now: datetime) -> None:
        """Insert or replace the cached sensitivity of one series, suite version and settings."""
        values = dict(min_drop=min_drop, trials=trials, source=source, computed_at=now)
        stmt = self._insert(sensitivity).values(model=model, suite=suite, suite_version=suite_version,
                                                settings=settings, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["model", "suite", "suite_version", "settings"], set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # --- samples -----------------------------------------------------------------------------

    def _sqlite_values(self, row: dict) -> list:
        """A sample's values in SAMPLE_COLUMNS order, as SQLAlchemy's insert would bind them (a
        column left out: its default, else NULL)."""
        get = row.get
        return [get(name, default) if process is None else process(get(name, default))
                for name, process, default in self._sqlite_binds]

    @cached_property
    def _sqlite_binds(self) -> list:
        """(name, bind processor, default) per column; `turns` comes as its JSON text already
        (storable's json_turns)."""
        dialect = self.engine.dialect
        return [(c.name, None if c.name == "turns" else c.type.dialect_impl(dialect).bind_processor(dialect),
                 c.default.arg if c.default is not None and c.default.is_scalar else None) for c in SAMPLE_COLUMNS]

    @cached_property
    def _insert_samples(self):
        """INSERT ... ON CONFLICT DO NOTHING into samples: built once, not once a commit."""
        return self._insert(samples).on_conflict_do_nothing()

    def insert_samples(self, rows: list[dict], conn=None) -> int:
        """Insert samples in one transaction; one already stored (same run, case, index) is
        skipped. Returns how many were new. On SQLite they go in as multi-row INSERTs, counted
        by the driver's rowcount (the rows a statement added); psycopg would pipeline an
        executemany, whose errors surface late and noisily, so PostgreSQL counts by RETURNING."""
        if not rows:
            return 0
        if conn is None:
            with self.engine.begin() as conn:
                return self.insert_samples(rows, conn)
        if self.dialect == "sqlite":
            start = added = 0
            for size in _pieces(len(rows)):
                values: list = []
                for r in rows[start:start + size]:
                    values += self._sqlite_values(storable(r, json_turns=True))
                added += conn.exec_driver_sql(_sqlite_insert(size), tuple(values)).rowcount
                start += size
            return added
        stmt = self._insert_samples
        return len(conn.execute(stmt.returning(samples.c.id), [storable(r) for r in rows]).all())

    # --- export / import ---------------------------------------------------------------------

    def ensure_run(self, conn, *, model, suite, suite_version, slot, kind, status, started_at,
                   finished_at, planned, in_alert=False, verdict=None) -> int:
        """Find or create a run row (import): returns its id."""
        found = conn.execute(select(runs.c.id).where(and_(
            runs.c.model == model, runs.c.suite == suite, runs.c.slot == slot, runs.c.kind == kind))).scalar()
        if found is not None:
            return found
        return conn.execute(runs.insert().values(
            model=model, suite=suite, suite_version=suite_version, slot=slot, kind=kind, status=status,
            started_at=started_at, finished_at=finished_at, planned=planned, passed=0, failed=0, errors=0,
            input_tokens=0, output_tokens=0, in_alert=in_alert, verdict=verdict,
            assessed_at=finished_at if status == "complete" else None).returning(runs.c.id)).scalar()

    def refresh_runs(self, conn, run_ids: Iterable[int]) -> None:
        """A run's counters again after samples were added to it (import); a probe's kept
        measurement is dropped with the answers it was measured from (measured again when read)."""
        for run_id in run_ids:
            conn.execute(update(runs).where(runs.c.id == run_id)
                         .values(**self._aggregates(conn, run_id), probe=None))

__all__ = ["Store", "metadata", "runs", "samples"]
