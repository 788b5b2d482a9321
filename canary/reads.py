"""The reads `status`, `history`, `report`, `failures` and `alerts` make (a series' runs,
its acks and alerts, the alerts' messages, the per-case counts, the failed and latest
failing answers, a model's fingerprint and its probes), written once as SQL that SQLite and
PostgreSQL both run, over one primitive, `_rows` (a statement and its parameters in, tuples
out).

Store (store.py) runs them through its SQLAlchemy engine; `Reader` (dbapi.py) through the
driver alone, so those commands never import SQLAlchemy, whose import costs more than they
spend reading a year of history. What the drivers hand back differently is evened out here:
SQLite keeps times as text, written as SQLAlchemy writes them (`_time`, `_at`), and
booleans as 0 or 1; JSON columns are read as text and decoded by `own_json`.
"""
from __future__ import annotations

import json
import logging
import re
from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable

import orjson

log = logging.getLogger("canary.reads")

SERIES_KINDS = ("scheduled", "manual", "confirm")  # runs that make a series; `compare` runs never do
# what a series' point is made of (series.build, which unpacks them in this order): a year
# of a series reads only these
POINT_COLUMNS = ("id", "slot", "kind", "suite_version", "passed", "failed", "errors", "in_alert", "output_tokens",
                 "latency_p50_ms", "reported_model", "cost", "verdict")
CASE_FIELD = {"passed": 0, "failed": 1}  # runs.cases: [passed, failed, errors]
KEPT = ("verdict", "probe")  # JSON a read works out and keeps on a run (SeriesReads.keep)
LATEST_GROUPS = 200  # (runs, cases) groups per query of latest_samples (SQLite bounds an OR's depth)

LatestRun = namedtuple("LatestRun", "id model suite slot kind status passed failed errors")
Sensitivity = namedtuple("Sensitivity", "model suite suite_version settings min_drop trials source computed_at")
AlertKey = namedtuple("AlertKey", "model suite kind")
AlertSpan = namedtuple("AlertSpan", "id model suite kind state opened_at opened_run_id closed_at closed_run_id closed_by")
SampleTurns = namedtuple("SampleTurns", "id run_id case_id sample status request_id finished_at turns")
SeriesRun = namedtuple("SeriesRun", "id model suite slot kind status suite_version passed failed errors output_tokens "
                                    "latency_p50_ms reported_model")
Alert = namedtuple("Alert", AlertSpan._fields + ("details",))
AlertMessage = namedtuple("AlertMessage", "alert_id event message state attempts sent_at next_attempt_at last_error")
FingerprintRow = namedtuple("FingerprintRow", "id model version origin created_at temperature logprobs candidates "
                                              "border calls input_tokens output_tokens cost")
FingerprintInput = namedtuple("FingerprintInput", "prompt reference logprobs")
ProbeRun = namedtuple("ProbeRun", "id slot kind suite_version passed errors probe")


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


def api_json(text: str | None):
    """JSON that came from an API (a sample's turns, a fingerprint's first tokens), read as
    text and decoded by the stdlib, which keeps an integer beyond 64 bits whole."""
    return None if text is None else json.loads(text)


_PARAM = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=512)
def driver_sql(sql: str, dialect: str) -> str:
    """A statement written with `:name` parameters in the driver's style: as it is for sqlite3,
    `%(name)s` for psycopg."""
    return sql if dialect == "sqlite" else _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def passed_answered(counts: dict[str, list[int]]) -> dict[str, tuple[int, int]]:
    """Per case, (passed, answered) from the stored [passed, failed, errors] (runs.cases)."""
    return {case: (p, p + f) for case, (p, f, _e) in counts.items()}


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _listed(prefix: str, values: Iterable, params: dict[str, Any]) -> str:
    """`:prefix0, :prefix1, ...` for an IN list, its values added to `params`."""
    names = []
    for i, value in enumerate(values):
        params[f"{prefix}{i}"] = value
        names.append(f":{prefix}{i}")
    return ", ".join(names)


_KINDS = ", ".join(f"'{k}'" for k in SERIES_KINDS)


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


class SeriesReads:
    """What the series' reads ask of a database, whatever holds the connection."""

    dialect: str  # "sqlite" | "postgresql"
    refusals: tuple[type[BaseException], ...] = ()  # what the connection raises when the database fails

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    def _execute(self, sql: str, params: list[dict[str, Any]]) -> None:
        """A statement that writes, once for each set of parameters, committed together."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the drivers' differences ------------------------------------------------------------

    def _time(self, value) -> datetime | None:
        """A stored time as a naive UTC datetime (SQLite hands back the text SQLAlchemy wrote)."""
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    def _at(self, value: datetime):
        """A time as a parameter compared with stored ones (on SQLite: the text SQLAlchemy writes)."""
        return f"{value:%Y-%m-%d %H:%M:%S.%f}" if self.dialect == "sqlite" else value

    # --- the reads ---------------------------------------------------------------------------

    def series_runs(self, model: str, suite: str, *, since: int | None = None, until: datetime | None = None,
                    version: str | None = None, first: int | None = None, last: int | None = None,
                    cases: bool = True) -> tuple[list[tuple], bool]:
        """Complete runs of one series (scheduled, manual and confirmation runs), oldest first:
        runs from id `since` on (the last ack's run), with slot <= `until`, of one suite
        `version`; only the `first` or the `last` n of them (ix_runs_series serves both ends).
        Returns (rows, whether more exist beyond the n). A slot cut by the limit is dropped
        whole, so a run never comes without its confirmation run. `cases=False` leaves the
        per-case counts out. A row is a tuple in POINT_COLUMNS order, then `cases`."""
        own = ("verdict", "cases")  # JSON canary wrote: read as text, decoded with orjson (own_json)
        cols = [f"CAST({n} AS TEXT)" if n in own else n for n in POINT_COLUMNS] + (["CAST(cases AS TEXT)"] if cases else [])
        params: dict[str, Any] = {"model": model, "suite": suite}
        where = f"model = :model AND suite = :suite AND kind IN ({_KINDS}) AND status = 'complete'"
        if since is not None:
            where += " AND id >= :since"
            params["since"] = since
        if until is not None:
            where += " AND slot <= :until"
            params["until"] = self._at(until)
        if version is not None:
            where += " AND suite_version = :version"
            params["version"] = version
        order = "slot DESC, id DESC" if last else "slot, id"
        limit = first or last
        sql = f"SELECT {', '.join(cols)} FROM runs WHERE {where} ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit) + 1}"
        rows = self._rows(sql, params)
        more = bool(limit) and len(rows) > limit
        if more:
            edge = rows[limit][1]  # the first slot beyond the limit: drop it whole
            rows = [r for r in rows[:limit] if r[1] != edge]
        time, verdict = self._time, POINT_COLUMNS.index("verdict")
        out = [(r[0], time(r[1]), *r[2:7], bool(r[7]), *r[8:verdict], own_json(r[verdict]),
                *map(own_json, r[verdict + 1:])) for r in rows]
        return (list(reversed(out)) if last else out), more

    def last_ack(self, model: str, suite: str) -> int | None:
        """The run the series' last `canary ack` accepted (its baseline and reference restart there)."""
        rows = self._rows("SELECT run_id FROM acks WHERE model = :model AND suite = :suite ORDER BY id DESC LIMIT 1",
                          {"model": model, "suite": suite})
        return rows[0][0] if rows else None

    def latest_runs(self) -> list[LatestRun]:
        """The latest run of every (model, suite) series (`compare` runs are no series)."""
        rows = self._rows(
            f"SELECT {', '.join('runs.' + f for f in LatestRun._fields)} FROM runs JOIN "
            f"(SELECT max(id) AS id FROM runs WHERE kind IN ({_KINDS}) GROUP BY model, suite) AS newest "
            "ON runs.id = newest.id ORDER BY runs.model, runs.suite")
        return [LatestRun(*r[:3], self._time(r[3]), *r[4:]) for r in rows]

    def alert_intervals(self, model: str, suite: str, kind: str) -> list[tuple[int, int | None]]:
        """(opening run id, closing run id or None while open) of every alert of one series."""
        return [tuple(r) for r in self._rows(
            "SELECT opened_run_id, closed_run_id FROM alerts WHERE model = :model AND suite = :suite "
            "AND kind = :kind AND opened_run_id IS NOT NULL", {"model": model, "suite": suite, "kind": kind})]

    def open_alert_keys(self) -> list[AlertKey]:
        """(model, suite, kind) of every open alert, oldest first."""
        return [AlertKey(*r) for r in self._rows("SELECT model, suite, kind FROM alerts WHERE state = 'open' ORDER BY id")]

    def sensitivities(self) -> dict[tuple[str, str, str, str], Sensitivity]:
        """Every cached sensitivity, by (model, suite, suite_version, settings)."""
        out = {}
        for r in self._rows(f"SELECT {', '.join(Sensitivity._fields)} FROM sensitivity"):
            s = Sensitivity(*r[:-1], self._time(r[-1]))
            out[(s.model, s.suite, s.suite_version, s.settings)] = s
        return out

    def case_results(self, run_ids: Iterable[int]) -> dict[int, dict[str, tuple[int, int]]]:
        """Per run, per case: (passed, answered), as a detector reads them."""
        return {r: passed_answered(cases) for r, cases in self._cases(run_ids).items()}

    def _cases(self, run_ids: Iterable[int]) -> dict[int, dict[str, list[int]]]:
        """Per run, per case: [passed, failed, errors] (runs.cases, or counted from the samples
        of a run still going)."""
        out: dict[int, dict[str, list[int]]] = {}
        missing = []
        for chunk in chunks(list(run_ids), 5000):
            params: dict[str, Any] = {}
            for run_id, cases in self._rows(
                    f"SELECT id, CAST(cases AS TEXT) FROM runs WHERE id IN ({_listed('r', chunk, params)})", params):
                if cases is None:
                    missing.append(run_id)
                else:
                    out[run_id] = own_json(cases)
        for chunk in chunks(missing, 5000):
            params = {}
            for run_id, case_id, status, n in self._rows(
                    "SELECT run_id, case_id, status, count(*) FROM samples "
                    f"WHERE run_id IN ({_listed('r', chunk, params)}) GROUP BY run_id, case_id, status", params):
                out.setdefault(run_id, {}).setdefault(case_id, [0, 0, 0])[CASE_FIELD.get(status, 2)] += n
        return out

    def open_alerts(self, model: str | None = None, suite: str | None = None) -> list[Alert]:
        """The open alerts (of one model, of one suite), oldest first, with their details."""
        params: dict[str, Any] = {}
        where = "state = 'open'"
        for name, value in (("model", model), ("suite", suite)):
            if value is not None:
                where += f" AND {name} = :{name}"
                params[name] = value
        return self._alerts(f"WHERE {where} ORDER BY id", params)

    def recent_alerts(self, limit: int) -> list[Alert]:
        """The newest alerts, newest first, with their details (`canary alerts`)."""
        return self._alerts(f"ORDER BY id DESC LIMIT {int(limit)}", {})

    def _alerts(self, rest: str, params: dict[str, Any]) -> list[Alert]:
        time = self._time
        return [Alert(*r[:5], time(r[5]), r[6], time(r[7]), *r[8:10], own_json(r[10])) for r in self._rows(
            f"SELECT {', '.join(AlertSpan._fields)}, CAST(details AS TEXT) FROM alerts {rest}", params)]

    def alert_messages(self, alert_ids: Iterable[int]) -> list[AlertMessage]:
        """The messages that carry these alerts' events, oldest first, with their delivery state
        (a message carrying several alerts comes once for each)."""
        time, out = self._time, []
        for chunk in chunks(list(alert_ids), 5000):
            params: dict[str, Any] = {}
            out += [AlertMessage(r[0], r[1], own_json(r[2]), r[3], r[4], time(r[5]), time(r[6]), r[7]) for r in self._rows(
                "SELECT outbox_alerts.alert_id, outbox.event, CAST(outbox.message AS TEXT), outbox.state, "
                "outbox.attempts, outbox.sent_at, outbox.next_attempt_at, outbox.last_error FROM outbox_alerts "
                f"JOIN outbox ON outbox.id = outbox_alerts.outbox_id WHERE outbox_alerts.alert_id IN "
                f"({_listed('a', chunk, params)}) ORDER BY outbox.id", params)]
        return out

    def alert_episodes(self) -> list[AlertSpan]:
        """Every alert without its details (the report shades each episode), oldest first."""
        time = self._time
        return [AlertSpan(*r[:5], time(r[5]), r[6], time(r[7]), *r[8:])
                for r in self._rows(f"SELECT {', '.join(AlertSpan._fields)} FROM alerts ORDER BY id")]

    def latest_samples(self, runs_of: dict[str, Iterable[int]], status: str) -> dict[str, SampleTurns]:
        """Per case, the newest sample with this status among that case's own runs (`runs_of`:
        case id -> run ids, the newest 5,000 of them): its turns (answers and verdicts) and
        request id. Cases sharing a set of runs are asked together, each group through the
        (run, case) index, and the newest id per case is chosen in SQL, so only the rows
        returned are read. A sample's turns came from an API: decoded by the stdlib, which
        keeps an integer beyond 64 bits whole."""
        groups: dict[tuple[int, ...], list[str]] = {}
        for case, ids in runs_of.items():
            if ids := tuple(sorted(set(ids))[-5000:]):
                groups.setdefault(ids, []).append(case)
        chosen: list[int] = []
        for chunk in chunks(list(groups.items()), LATEST_GROUPS):
            params: dict[str, Any] = {"status": status}
            where = " OR ".join(f"(run_id IN ({_listed(f'r{k}_', ids, params)}) "
                                f"AND case_id IN ({_listed(f'c{k}_', cases, params)}))"
                                for k, (ids, cases) in enumerate(chunk))
            chosen += [r[0] for r in self._rows(
                f"SELECT max(id) FROM samples WHERE ({where}) AND status = :status GROUP BY case_id", params)]
        out = {}
        for chunk in chunks(chosen, 5000):
            params = {}
            for s in self._sample_turns(f"id IN ({_listed('i', chunk, params)})", params):
                out[s.case_id] = s
        return out

    def failed_samples(self, run_ids: Iterable[int]) -> list[SampleTurns]:
        """The failed samples of some runs, newest run first, each with its turns and request id."""
        out: list[SampleTurns] = []
        for chunk in chunks(list(run_ids), 5000):
            params: dict[str, Any] = {}
            out += self._sample_turns(f"run_id IN ({_listed('r', chunk, params)}) AND status = 'failed'", params)
        return sorted(out, key=lambda r: (-r.run_id, r.case_id, r.sample))

    def _sample_turns(self, where: str, params: dict[str, Any]) -> list[SampleTurns]:
        """Samples with their turns (from an API: `api_json`)."""
        return [SampleTurns(*r[:6], self._time(r[6]), api_json(r[7])) for r in self._rows(
            f"SELECT {', '.join(SampleTurns._fields[:-1])}, CAST(turns AS TEXT) FROM samples WHERE {where}", params)]

    def series_run(self, run_id: int) -> SeriesRun | None:
        """One run, whatever its kind or state, with what a series reads of it."""
        rows = self._rows(f"SELECT {', '.join(SeriesRun._fields)} FROM runs WHERE id = :id", {"id": run_id})
        return SeriesRun(*rows[0][:3], self._time(rows[0][3]), *rows[0][4:]) if rows else None

    def case_counts(self, run_ids: Iterable[int]) -> dict[int, dict[str, CaseCount]]:
        """Per run, per case: how many samples passed, failed and errored (cases are the unit
        that compare, detection and `canary failures` reason about, not pooled samples).

        A finished run keeps these in its `cases` column; a run still going is counted
        from its samples."""
        return {r: {c: CaseCount(*n) for c, n in cases.items()} for r, cases in self._cases(run_ids).items()}

    def fingerprint(self, model: str) -> tuple[FingerprintRow, list[FingerprintInput]] | None:
        """The model's newest fingerprint (by when it was made: one imported later may be older)
        and its inputs in order. Their references hold first tokens an API returned (`api_json`)."""
        rows = self._rows(f"SELECT {', '.join(FingerprintRow._fields)} FROM fingerprints WHERE model = :model "
                          "ORDER BY created_at DESC, id DESC LIMIT 1", {"model": model})
        if not rows:
            return None
        r = rows[0]
        row = FingerprintRow(*r[:4], self._time(r[4]), r[5], bool(r[6]), *r[7:])
        inputs = [FingerprintInput(prompt, api_json(reference), api_json(logprobs))
                  for prompt, reference, logprobs in self._rows(
                      "SELECT prompt, CAST(reference AS TEXT), CAST(logprobs AS TEXT) FROM fingerprint_inputs "
                      "WHERE fingerprint_id = :id ORDER BY position", {"id": row.id})]
        return row, inputs

    def probe_runs(self, model: str, suite: str, version: str) -> list[ProbeRun]:
        """The complete scheduled and manual runs of one suite version of a series, oldest first,
        with the measurement kept on each (None: not measured yet)."""
        time = self._time
        return [ProbeRun(r[0], time(r[1]), *r[2:6], own_json(r[6])) for r in self._rows(
            f"SELECT {', '.join(ProbeRun._fields[:-1])}, CAST(probe AS TEXT) FROM runs WHERE model = :model "
            "AND suite = :suite AND suite_version = :version AND kind IN ('scheduled', 'manual') "
            "AND status = 'complete' ORDER BY slot, id", {"model": model, "suite": suite, "version": version})]

    def answered_turns(self, run_ids: list[int]) -> list[tuple[int, str, list | None]]:
        """(run id, case id, turns) of every answered sample of these runs (turns: `api_json`)."""
        out = []
        for chunk in chunks(run_ids, 5000):
            params: dict[str, Any] = {}
            out += [(run_id, case_id, api_json(turns)) for run_id, case_id, turns in
                    self._rows(f"SELECT run_id, case_id, CAST(turns AS TEXT) FROM samples WHERE run_id IN "
                               f"({_listed('r', chunk, params)}) AND status != 'error' ORDER BY id", params)]
        return out

    # --- the writes a read makes: what it worked out, kept for the next read ------------------

    def save_verdict(self, run_id: int, verdict: dict) -> None:
        """Keep the quality verdict a point was judged with on its run (history, status and the
        report read it instead of judging every point again)."""
        self._save("verdict", {run_id: verdict})

    def keep(self, column: str, values: dict[int, dict]) -> None:
        """Keep on their runs what a read worked out (`verdict`: points judged now; `probe`:
        fingerprint probes measured now), in one transaction. A cache: a database that refuses
        the write (a read-only one) is read and worked out again next time, never a failed read."""
        if not values:
            return
        try:
            self._save(column, values)
        except self.refusals as exc:
            log.info("runs.%s worked out by a read not kept (%s): worked out again next time", column,
                     type(exc).__name__)

    def _save(self, column: str, values: dict[int, dict]) -> None:
        if column not in KEPT:
            raise ValueError(f"runs.{column} is not a kept column")
        param = "CAST(:value AS JSONB)" if self.dialect == "postgresql" else ":value"
        self._execute(f"UPDATE runs SET {column} = {param} WHERE id = :id",
                      [{"value": json.dumps(value), "id": run_id} for run_id, value in values.items()])
