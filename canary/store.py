"""The one place that reads and writes the database: runs, samples, migrations, import/export.

SQLite (WAL, a busy timeout of 30 s or the URL's `?timeout=SECONDS`) is the embedded
default; PostgreSQL (psycopg 3) is for production. A database that fails (unreachable,
read-only, full) raises StorageError or SQLAlchemy's DBAPIError; `failure_text` says why
in one line, without the SQL or its parameters.
A run's samples reach `insert_samples` through the sample writer (writer.py); what a
sample holds came from an API, so it is stored as `storable` (storable.py) makes it:
secrets redacted, and nothing the database would refuse.
"""
from __future__ import annotations

import json
import statistics
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from datetime import datetime
from importlib import resources
from typing import Any, Iterable, Iterator

import orjson
import re
from sqlalchemy import Text, and_, bindparam, cast, create_engine, event, func, inspect, select, text, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from . import redact
from .storable import storable
from .errors import ConfigError, StorageError
from .schema import acks, metadata, runs, samples, sensitivity
from .schema import alerts as alert_rows

SAMPLE_COLUMNS = [c.name for c in samples.columns if c.name != "id"]
SERIES_KINDS = ("scheduled", "manual", "confirm")  # runs that make a series; `compare` runs never do
FINISHED = ("complete", "interrupted", "budget_exhausted")
# what a series' point is made of (series.build, which unpacks them in this order): a year
# of a series reads only these
POINT_COLUMNS = ("id", "slot", "kind", "suite_version", "passed", "failed", "errors", "in_alert", "output_tokens",
                 "latency_p50_ms", "reported_model", "cost", "verdict")
LATEST_GROUPS = 200  # (runs, cases) groups per query of latest_samples (SQLite bounds an OR's depth)
SQLITE_BUSY_TIMEOUT = 30.0  # seconds a write waits for another connection's lock


def _sqlite_pragmas(busy_timeout: float):
    def set_pragmas(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
    return set_pragmas


def passed_answered(counts: dict[str, list[int]]) -> dict[str, tuple[int, int]]:
    """Per case, (passed, answered) from the stored [passed, failed, errors] (runs.cases)."""
    return {case: (p, p + f) for case, (p, f, _e) in counts.items()}


def failure_text(exc: BaseException) -> str:
    """Why the database refused, in one line: the driver's message, never the SQL or its parameters."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines()
    return lines[0].strip() if lines else type(orig).__name__


def is_database_failure(exc: BaseException) -> bool:
    return isinstance(exc, (DBAPIError, StorageError))


def own_json(text: str | None):
    """JSON that canary wrote itself (a run's verdict, its per-case counts), read as text and
    decoded with orjson: a few times the stdlib's speed, which a year of them feels. What
    came from an API (a sample's turns) goes through the stdlib (SQLAlchemy's JSON type):
    orjson would read an integer beyond 64 bits as a float. NaN and infinities, which the
    stdlib writes, fall back to it."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


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


@dataclass
class CaseUsage(CaseCount):
    """One case's samples pooled over runs, with the tokens and latencies of the answered ones."""

    input_tokens: int = 0
    output_tokens: int = 0
    latencies_ms: list[float] = field(default_factory=list)


_CASE_FIELD = {"passed": 0, "failed": 1}  # runs.cases: [passed, failed, errors]


SAMPLE_COLUMNS = [c for c in samples.columns if c.name != "id"]
SQLITE_ROWS_PER_INSERT = 500  # x 16 values, well under SQLite's 32,766 variables a statement


@lru_cache(maxsize=None)
def _sqlite_insert(n: int) -> str:
    """INSERT of n samples in one statement, ON CONFLICT DO NOTHING. The sample writer's way on
    SQLite: one statement is one step of the engine, so the writer thread gives up and takes
    back the GIL once a commit, not once a sample (executemany: once a row, each time taken
    back from the busy event loop)."""
    row = f"({', '.join('?' * len(SAMPLE_COLUMNS))})"
    return (f"INSERT INTO samples ({', '.join(c.name for c in SAMPLE_COLUMNS)}) VALUES "
            f"{', '.join([row] * n)} ON CONFLICT DO NOTHING")


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
        redact.remember([redact.database_password(url)])
        try:
            self.engine = make_engine(url)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise ConfigError([f"database: cannot use the URL {_hide_password(url)}: {exc} (use sqlite:///path.db "
                               "or postgresql+psycopg://user@host/db)"]) from None
        self.dialect = self.engine.dialect.name
        if upgrade:
            self.upgrade()

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
        rows = conn.execute(select(samples.c.case_id, samples.c.status, samples.c.input_tokens,
                                   samples.c.output_tokens, samples.c.cost, samples.c.latency_ms,
                                   samples.c.reported_model)
                            .where(samples.c.run_id == run_id)).all()
        counts = Counter(r.status for r in rows)
        cases: dict[str, list[int]] = {}
        for r in rows:
            cases.setdefault(r.case_id, [0, 0, 0])[_CASE_FIELD.get(r.status, 2)] += 1
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

    def series_runs(self, model: str, suite: str, *, since: int | None = None, until: datetime | None = None,
                    version: str | None = None, first: int | None = None, last: int | None = None,
                    cases: bool = True) -> tuple[list[Row], bool]:
        """Complete runs of one series (scheduled, manual and confirmation runs), oldest first:
        runs from id `since` on (the last ack's run), with slot <= `until`, of one suite
        `version`; only the `first` or the `last` n of them (ix_runs_series serves both ends).
        Returns (rows, whether more exist beyond the n). A slot cut by the limit is dropped
        whole, so a run never comes without its confirmation run. `cases=False` leaves the
        per-case counts out. A row is a tuple in POINT_COLUMNS order, then `cases`."""
        own = ("verdict", "cases")  # JSON canary wrote: read as text, decoded with orjson (own_json)
        cols = [cast(runs.c[n], Text).label(n) if n in own else runs.c[n] for n in POINT_COLUMNS] \
            + ([cast(runs.c.cases, Text).label("cases")] if cases else [])
        cond = [runs.c.model == model, runs.c.suite == suite, runs.c.kind.in_(SERIES_KINDS),
                runs.c.status == "complete"]
        if since is not None:
            cond.append(runs.c.id >= since)
        if until is not None:
            cond.append(runs.c.slot <= until)
        if version is not None:
            cond.append(runs.c.suite_version == version)
        q = select(*cols).where(and_(*cond))
        limit = first or last
        if last:
            q = q.order_by(runs.c.slot.desc(), runs.c.id.desc())
        else:
            q = q.order_by(runs.c.slot, runs.c.id)
        if limit:
            q = q.limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        more = bool(limit) and len(rows) > limit
        if more:
            edge = rows[limit].slot  # the first slot beyond the limit: drop it whole
            rows = [r for r in rows[:limit] if r.slot != edge]
        verdict = POINT_COLUMNS.index("verdict")
        out = [(*r[:verdict], own_json(r[verdict]), *map(own_json, r[verdict + 1:])) for r in rows]
        return (list(reversed(out)) if last else out), more

    def data_version(self) -> tuple:
        """A cheap fingerprint of what the report shows: it changes when a run starts, finishes
        or is judged, an alert opens or closes, or a series is acked (the daemon's `/` cache)."""
        parts = [func.max(runs.c.id), func.max(runs.c.finished_at), func.max(runs.c.assessed_at),
                 func.count(runs.c.verdict), func.max(alert_rows.c.id), func.max(alert_rows.c.closed_at),
                 func.max(acks.c.id)]
        q = select(*(select(p).scalar_subquery() for p in parts))
        with self.engine.connect() as conn:
            return tuple(conn.execute(q).one())

    def save_verdict(self, run_id: int, verdict: dict) -> None:
        """Keep the quality verdict a point was judged with on its run (history, status and the
        report read it instead of judging every point again)."""
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(verdict=verdict))

    def series(self, model: str, suite: str, *, kinds: Iterable[str] = SERIES_KINDS,
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
        """The latest run of every (model, suite) series (`compare` runs are no series)."""
        newest = select(runs.c.model, runs.c.suite, func.max(runs.c.id).label("id")) \
            .where(runs.c.kind.in_(SERIES_KINDS)).group_by(runs.c.model, runs.c.suite).subquery()
        with self.engine.connect() as conn:
            return conn.execute(select(runs).join(newest, runs.c.id == newest.c.id)
                                .order_by(runs.c.model, runs.c.suite)).all()

    def case_counts(self, run_ids: Iterable[int]) -> dict[int, dict[str, CaseCount]]:
        """Per run, per case: how many samples passed, failed and errored (cases are the unit
        that compare, detection and `canary failures` reason about, not pooled samples).

        A finished run keeps these in its `cases` column; a run still going is counted
        from its samples."""
        return {r: {c: CaseCount(*n) for c, n in cases.items()} for r, cases in self._cases(run_ids).items()}

    def case_results(self, run_ids: Iterable[int]) -> dict[int, dict[str, tuple[int, int]]]:
        """Per run, per case: (passed, answered), as a detector reads them."""
        return {r: passed_answered(cases) for r, cases in self._cases(run_ids).items()}

    def _cases(self, run_ids: Iterable[int]) -> dict[int, dict[str, list[int]]]:
        """Per run, per case: [passed, failed, errors] (runs.cases, or counted from the samples)."""
        out: dict[int, dict[str, list[int]]] = {}
        ids = list(run_ids)
        if not ids:
            return out
        with self.engine.connect() as conn:
            missing = []
            for chunk in _chunks(ids, 5000):
                for run_id, cases in conn.execute(select(runs.c.id, cast(runs.c.cases, Text))
                                                  .where(runs.c.id.in_(chunk))):
                    if cases is None:
                        missing.append(run_id)
                    else:
                        out[run_id] = own_json(cases)
            if not missing:
                return out
            q = (select(samples.c.run_id, samples.c.case_id, samples.c.status, func.count())
                 .where(samples.c.run_id.in_(missing))
                 .group_by(samples.c.run_id, samples.c.case_id, samples.c.status))
            for run_id, case_id, status, n in conn.execute(q):
                out.setdefault(run_id, {}).setdefault(case_id, [0, 0, 0])[_CASE_FIELD.get(status, 2)] += n
        return out

    def run_ids(self, model: str, suite: str, *, suite_version: str, since: datetime,
                kinds: Iterable[str], statuses: Iterable[str] = FINISHED) -> list[int]:
        """The runs of one model and suite version whose slot is at or after `since`, oldest first."""
        q = (select(runs.c.id).where(and_(
            runs.c.model == model, runs.c.suite == suite, runs.c.suite_version == suite_version,
            runs.c.slot >= since, runs.c.kind.in_(list(kinds)), runs.c.status.in_(list(statuses))))
             .order_by(runs.c.slot, runs.c.id))
        with self.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def case_usage(self, run_ids: Iterable[int]) -> dict[str, CaseUsage]:
        """Per case, pooled over the runs: samples passed, failed and errored, and the input and
        output tokens and latencies of the answered ones (what `canary compare` weighs)."""
        out: dict[str, CaseUsage] = {}
        ids = list(run_ids)
        if not ids:
            return out
        q = (select(samples.c.case_id, samples.c.status, samples.c.input_tokens, samples.c.output_tokens,
                    samples.c.latency_ms).where(samples.c.run_id.in_(ids)))
        with self.engine.connect() as conn:
            for case_id, status, tokens_in, tokens_out, latency in conn.execute(q):
                usage = out.setdefault(case_id, CaseUsage())
                if status == "error":
                    usage.errors += 1
                    continue
                if status == "passed":
                    usage.passed += 1
                else:
                    usage.failed += 1
                usage.input_tokens += tokens_in
                usage.output_tokens += tokens_out
                if latency is not None:
                    usage.latencies_ms.append(latency)
        return out

    def latest_samples(self, runs_of: dict[str, Iterable[int]], status: str) -> dict[str, Row]:
        """Per case, the newest sample with this status among that case's own runs (`runs_of`:
        case id -> run ids, the newest 5,000 of them): its turns (answers and verdicts) and
        request id. Cases sharing a set of runs are asked together, each group through the
        (run, case) index, and the newest id per case is chosen in SQL, so only the rows
        returned are read. (The groups are written as SQL text: a report asks for a few
        hundred of them, and as expressions they cost more to build than to run.)"""
        groups: dict[tuple[int, ...], list[str]] = {}
        for case, ids in runs_of.items():
            if ids := tuple(sorted(set(ids))[-5000:]):
                groups.setdefault(ids, []).append(case)
        chosen: list[int] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(list(groups.items()), LATEST_GROUPS):
                params: dict[str, Any] = {"status": status}
                where = []
                for k, (ids, cases) in enumerate(chunk):
                    params[f"r{k}"], params[f"c{k}"] = list(ids), cases
                    where.append(f"(run_id IN :r{k} AND case_id IN :c{k})")
                q = text(f"SELECT max(id) FROM samples WHERE ({' OR '.join(where)}) AND status = :status "
                         "GROUP BY case_id").bindparams(*(bindparam(n, expanding=True) for n in params if n != "status"))
                chosen += conn.execute(q, params).scalars()
            if not chosen:
                return {}
            return {r.case_id: r for r in conn.execute(select(samples).where(samples.c.id.in_(chosen)))}

    def error_summary(self, run_ids: Iterable[int], request_ids: int = 3) -> dict:
        """The errored samples of these runs: how many per error class and per HTTP status ("none":
        no response), most frequent first, and the first `request_ids` request ids (what a
        provider's support asks for)."""
        q = (select(samples.c.error, samples.c.error_status, samples.c.request_id)
             .where(and_(samples.c.run_id.in_(list(run_ids)), samples.c.status == "error"))
             .order_by(samples.c.finished_at, samples.c.id))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        statuses = Counter("none" if r.error_status is None else str(r.error_status) for r in rows)
        return {"classes": dict(Counter(r.error for r in rows).most_common()), "statuses": dict(statuses.most_common()),
                "request_ids": [r.request_id for r in rows if r.request_id][:request_ids]}

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

    def _sqlite_values(self, row: dict) -> Iterator:
        """A sample's values in SAMPLE_COLUMNS order, as SQLAlchemy's column types would bind them."""
        for name, process in self._sqlite_binds:
            value = row[name]
            yield value if process is None or value is None else process(value)

    @cached_property
    def _sqlite_binds(self) -> list:
        dialect = self.engine.dialect
        return [(c.name, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in SAMPLE_COLUMNS]

    @cached_property
    def _insert_samples(self):
        """INSERT ... ON CONFLICT DO NOTHING into samples: built once, not once a commit."""
        return self._insert(samples).on_conflict_do_nothing()

    def insert_samples(self, rows: list[dict], conn=None, *, count: bool = True) -> int:
        """Insert samples in one transaction; one already stored (same run, case, index) is
        skipped. Returns how many were new (`count=False`, on SQLite: not counted, which lets
        the driver insert them in one executemany, the sample writer's way; psycopg would
        pipeline such an executemany, whose errors surface late and noisily, so PostgreSQL
        keeps RETURNING)."""
        if not rows:
            return 0
        if conn is None:
            with self.engine.begin() as conn:
                return self.insert_samples(rows, conn, count=count)
        if not count and self.dialect == "sqlite":
            for chunk in _chunks(rows, SQLITE_ROWS_PER_INSERT):
                conn.exec_driver_sql(_sqlite_insert(len(chunk)),
                                     tuple(v for r in chunk for v in self._sqlite_values(storable(r))))
            return len(rows)
        stmt = self._insert_samples
        return len(conn.execute(stmt.returning(samples.c.id), [storable(r) for r in rows]).all())

    # --- export / import ---------------------------------------------------------------------

    def export_runs(self, *, model: str | None = None, suite: str | None = None,
                    since: datetime | None = None, batch: int = 64) -> Iterator[tuple[Row, list[Row]]]:
        """Every stored run (filtered), oldest first, each with its samples in case order, their
        `turns` as the stored JSON text (passed through, never parsed). Streamed a few runs at
        a time through the samples' run index, so memory stays flat whatever the history."""
        q = select(*[c for c in runs.columns if c.name != "cases"]).order_by(runs.c.slot, runs.c.id)
        if model:
            q = q.where(runs.c.model == model)
        if suite:
            q = q.where(runs.c.suite == suite)
        if since:
            q = q.where(runs.c.slot >= since)
        cols = [c for c in samples.columns if c.name not in ("id", "turns")] + [cast(samples.c.turns, Text).label("turns")]
        with self.engine.connect() as conn:
            selected = conn.execute(q).all()  # runs only: a few thousand rows a year
            for chunk in _chunks(selected, batch):
                by_run: dict[int, list[Row]] = {}
                for s in conn.execute(select(*cols).where(samples.c.run_id.in_([r.id for r in chunk]))
                                      .order_by(samples.c.run_id, samples.c.case_id, samples.c.sample)):
                    by_run.setdefault(s.run_id, []).append(s)
                for r in chunk:
                    yield r, by_run.get(r.id, [])

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
        for run_id in run_ids:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**self._aggregates(conn, run_id)))

    # --- failing cases and the report (`canary failures`, report_view) ---------------------------

    def failed_samples(self, run_ids: Iterable[int]) -> list[Row]:
        """The failed samples of some runs, newest run first, each with its turns and request id."""
        ids = list(run_ids)
        cols = (samples.c.id, samples.c.run_id, samples.c.case_id, samples.c.sample, samples.c.request_id,
                samples.c.finished_at, samples.c.turns)
        out: list[Row] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 5000):
                out += conn.execute(select(*cols).where(and_(samples.c.run_id.in_(chunk),
                                                             samples.c.status == "failed"))).all()
        return sorted(out, key=lambda r: (-r.run_id, r.case_id, r.sample))

    def alert_episodes(self) -> list[Row]:
        """Every alert without its details (the report shades each episode), oldest first."""
        from .schema import alerts
        cols = [c for c in alerts.columns if c.name != "details"]
        with self.engine.connect() as conn:
            return conn.execute(select(*cols).order_by(alerts.c.id)).all()


__all__ = ["Store", "CaseCount", "CaseUsage", "SERIES_KINDS", "SAMPLE_COLUMNS", "metadata", "runs", "samples"]
