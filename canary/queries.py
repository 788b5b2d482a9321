"""The reads of the stored history beyond those of the read commands (status, history, the
report, failures and alerts: reads.py's, in plain SQL): per-case usage, error summaries, a
run's samples, the export's stream, and what /metrics, /healthz and the slots read: what
detection, `compare`, the daemon's health and its slots ask. Store (store.py) inherits
them; each reads what its question needs, through an index, whatever the length of the
history.
"""
from __future__ import annotations

from collections import Counter, namedtuple
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Iterator

from sqlalchemy import Text, and_, cast, func, select
from sqlalchemy.engine import Row

from .fingerprint import SUITE as FINGERPRINT
from .reads import SERIES_KINDS, CaseCount, SeriesReads, chunks
from .schema import acks, outbox, runs, samples
from .schema import alerts as alert_rows

FINISHED = ("complete", "interrupted", "budget_exhausted")


@dataclass
class CaseUsage(CaseCount):
    """One case's samples pooled over runs, with the tokens and latencies of the answered ones."""

    input_tokens: int = 0
    output_tokens: int = 0
    latencies_ms: list[float] = field(default_factory=list)


# a sample as export reads it: every column but the id, `turns` last, as its stored JSON text
ExportedSample = namedtuple("ExportedSample", [c.name for c in samples.columns if c.name not in ("id", "turns")]
                            + ["turns"])


class HistoryQueries(SeriesReads):
    """Read-only queries over `self.engine` (Store's); those the read commands make are
    SeriesReads' (reads.py), in plain SQL."""

    def data_version(self) -> tuple:
        """A cheap fingerprint of what the report shows: it changes when a run starts, finishes
        or is judged, an alert opens or closes, or a series is acked (the daemon's `/` cache)."""
        parts = [func.max(runs.c.id), func.max(runs.c.finished_at), func.max(runs.c.assessed_at),
                 func.count(runs.c.verdict), func.max(alert_rows.c.id), func.max(alert_rows.c.closed_at),
                 func.max(acks.c.id)]
        q = select(*(select(p).scalar_subquery() for p in parts))
        with self.engine.connect() as conn:
            return tuple(conn.execute(q).one())

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

    def run_samples(self, run_id: int) -> list[Row]:
        with self.engine.connect() as conn:
            return conn.execute(select(samples).where(samples.c.run_id == run_id)
                                .order_by(samples.c.case_id, samples.c.sample)).all()

    def export_runs(self, *, model: str | None = None, suite: str | None = None,
                    since: datetime | None = None, batch: int = 64) -> Iterator[tuple[Row, list[ExportedSample]]]:
        """Every stored run (filtered), oldest first, each with its samples in case order, their
        `turns` as the stored JSON text (passed through, never parsed). Streamed a few runs at
        a time through the samples' run index, so memory stays flat whatever the history.
        A sample is an `ExportedSample`, not SQLAlchemy's Row: a Row finds a field by name
        only after a failed attribute lookup (an exception raised and dropped), which cost
        a quarter of the export's time at a dozen fields a sample."""
        q = select(*[c for c in runs.columns if c.name != "cases"]).order_by(runs.c.slot, runs.c.id)
        if model:
            q = q.where(runs.c.model == model)
        if suite:
            q = q.where(runs.c.suite == suite)
        if since:
            q = q.where(runs.c.slot >= since)
        cols = [samples.c[name] for name in ExportedSample._fields[:-1]] + [cast(samples.c.turns, Text).label("turns")]
        with self.engine.connect() as conn:
            selected = conn.execute(q).all()  # runs only: a few thousand rows a year
            for chunk in chunks(selected, batch):
                by_run: dict[int, list[ExportedSample]] = {}
                for s in map(ExportedSample._make, conn.execute(
                        select(*cols).where(samples.c.run_id.in_([r.id for r in chunk]))
                        .order_by(samples.c.run_id, samples.c.case_id, samples.c.sample))):
                    by_run.setdefault(s.run_id, []).append(s)
                for r in chunk:
                    yield r, by_run.get(r.id, [])

    # --- what the slots read (slots.py) --------------------------------------------------------

    def unfinished_runs(self, models: list[str] | None, kinds: Iterable[str], *, since: datetime | None = None,
                        statuses: Iterable[str] = ("running", "interrupted")) -> list[Row]:
        """(id, model, slot, kind, status, owner, heartbeat_at) of the runs of these kinds (and
        models: None, every one) still running or interrupted, with a slot at or after `since`."""
        cond = [runs.c.kind.in_(list(kinds)), runs.c.status.in_(list(statuses))]
        if models is not None:
            cond.append(runs.c.model.in_(models))
        if since is not None:
            cond.append(runs.c.slot >= since)
        q = select(runs.c.id, runs.c.model, runs.c.slot, runs.c.kind, runs.c.status, runs.c.owner,
                   runs.c.heartbeat_at).where(and_(*cond))
        with self.engine.connect() as conn:
            return conn.execute(q).all()

    def latest_interrupted(self, model: str, suite: str, suite_version: str) -> Row | None:
        """The latest interrupted manual run of a model and suite version (`canary run --resume`)."""
        with self.engine.connect() as conn:
            return conn.execute(select(runs).where(and_(
                runs.c.model == model, runs.c.suite == suite, runs.c.kind == "manual",
                runs.c.status == "interrupted", runs.c.suite_version == suite_version))
                .order_by(runs.c.slot.desc()).limit(1)).first()

    # --- what /metrics and /healthz read ------------------------------------------------------

    def latest_pass_rates(self) -> list[tuple[str, str, int, int]]:
        """(model, suite, passed, answered) of the latest complete scheduled or manual run of
        each quality series (a scrape without a config)."""
        kinds = ("scheduled", "manual")
        newest = (select(runs.c.model, runs.c.suite, func.max(runs.c.id).label("id"))
                  .where(and_(runs.c.status == "complete", runs.c.kind.in_(kinds), runs.c.suite != FINGERPRINT))
                  .group_by(runs.c.model, runs.c.suite).subquery())
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                select(runs.c.model, runs.c.suite, runs.c.passed, runs.c.passed + runs.c.failed)
                .join(newest, runs.c.id == newest.c.id))]

    def last_successes(self) -> list[tuple[str, datetime]]:
        """(model, finished_at) of the latest complete scheduled run of each model."""
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                select(runs.c.model, func.max(runs.c.finished_at))
                .where(and_(runs.c.kind == "scheduled", runs.c.status == "complete")).group_by(runs.c.model))]

    def last_done_slots(self, statuses: Iterable[str]) -> dict[str, datetime]:
        """Per model, the latest slot of a scheduled run that ended with one of these statuses."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(runs.c.model, func.max(runs.c.slot)).where(and_(
                runs.c.kind == "scheduled", runs.c.status.in_(list(statuses)))).group_by(runs.c.model)).all())

    def outbox_counts(self) -> list[Row]:
        """(state, count) of the alert messages in the outbox."""
        with self.engine.connect() as conn:
            return conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()

    def undelivered(self, waiting_since: datetime) -> tuple[list[Row], list[Row]]:
        """(id, last_error) of the alert messages Slack refused for good since the last one it
        took, and of those pending since before `waiting_since`, oldest first."""
        with self.engine.connect() as conn:
            last_sent = conn.execute(select(func.max(outbox.c.sent_at)).where(outbox.c.state == "sent")).scalar()
            failed = conn.execute(select(outbox.c.id, outbox.c.last_error).where(and_(
                outbox.c.state == "failed", outbox.c.created_at >= (last_sent or datetime.min)))
                .order_by(outbox.c.id)).all()
            waiting = conn.execute(select(outbox.c.id, outbox.c.last_error).where(and_(
                outbox.c.state == "pending", outbox.c.created_at < waiting_since)).order_by(outbox.c.id)).all()
        return failed, waiting
