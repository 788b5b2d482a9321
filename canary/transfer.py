"""Export and import of stored samples as JSONL, one sample an object (format in the README),
then one line a stored fingerprint (fingerprint/transfer.py).

Import is idempotent: a sample already stored (same model, suite, slot, kind, case, index)
is skipped, and so is a fingerprint already stored, so the same file can be loaded twice,
or history moved between databases.
Every exported record passes through the redaction (redact.py), so a key stored by a
version of canary that did not redact yet is not printed either.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import IO, Iterable, Iterator, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import episode, redact
from .clock import iso, parse_time
from .errors import ConfigError
from .fingerprint.transfer import RECORD as FINGERPRINT_RECORD
from .fingerprint.transfer import FingerprintRecord, export_records, import_record
from .store import Store


def export_lines(store: Store, **filters) -> Iterator[str]:
    """Every stored sample as one JSON line (the README's format), oldest run first, streamed.

    The run's fields are formatted once per run, and each sample's `turns` is the stored
    JSON text spliced in as it is, so a year of history exports without parsing it. What
    can hold a secret goes through the redaction: the run's fields once, a sample's texts
    (error message, request id, model id, stop reason), and its `turns`: a stored text in
    which a quick scan finds a known secret or a credential shape's hint (a row stored before
    redaction existed, or a secret registered since) is parsed, redacted string by string and
    written again, so JSON escapes hide nothing and a replacement never breaks the JSON."""
    intervals: dict[tuple[str, str], list] = {}
    for run, rows in store.export_runs(**filters):
        series = (run.model, run.suite)
        if series not in intervals:
            intervals[series] = store.alert_intervals(*series, "quality")
        in_alert = run.in_alert or episode.inside(run.id, intervals[series])
        head = _dumps(redact.value({
            "model": run.model, "suite": run.suite, "suite_version": run.suite_version, "slot": iso(run.slot),
            "kind": run.kind, "run_status": run.status, "run_started_at": iso(run.started_at),
            "run_finished_at": iso(run.finished_at), "run_planned": run.planned, "run_in_alert": bool(in_alert),
            "run_verdict": run.verdict,
        }))[:-1]
        suspect = redact.REDACTOR.suspect
        for r in rows:
            turns = r.turns or "null"
            # one look over all the texts an API wrote, joined by NULs (no hint or secret holds
            # one, so what it finds is inside one of them): most samples need no more
            text = redact.text if suspect(
                f"{turns}\0{r.error_message}\0{r.request_id}\0{r.finish_reason}\0{r.reported_model}") else _as_is
            fields = _dumps({
                "case": r.case_id, "sample": r.sample, "status": r.status, "passed": r.status == "passed",
                "error": r.error, "error_status": r.error_status, "error_message": text(r.error_message),
                "request_id": text(r.request_id), "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                "latency_ms": r.latency_ms, "finish_reason": text(r.finish_reason),
                "reported_model": text(r.reported_model), "cost": r.cost, "finished_at": iso(r.finished_at)})[1:-1]
            if text is not _as_is and suspect(turns):  # redacted string by string, where escapes hide nothing
                turns = _dumps(redact.value(json.loads(turns)))
            yield f'{head},{fields},"turns":{turns}}}\n'
    for record in export_records(store, model=filters.get("model"), suite=filters.get("suite")):  # redacted there
        yield _dumps(record) + "\n"


def _as_is(value: str | None) -> str | None:
    return value


def _dumps(value) -> str:
    """Compact JSON, non-ASCII as it is (orjson; what it cannot write, the stdlib writes)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits, say
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(lines: Iterable[str], out: IO[str]) -> int:
    n = 0
    for line in lines:
        out.write(line)
        n += 1
    return n


class Record(BaseModel):
    """One line of the JSONL format (unknown fields are ignored, so newer exports still load)."""

    model_config = ConfigDict(extra="ignore")
    model: str
    suite: str
    suite_version: str
    slot: datetime
    kind: str = "scheduled"
    run_status: str = "complete"
    run_started_at: datetime | None = None
    run_finished_at: datetime | None = None
    run_planned: int = Field(default=0, ge=0)
    run_in_alert: bool = False
    run_verdict: dict | None = None
    case: str
    sample: int = Field(ge=0)
    status: Literal["passed", "failed", "error"]
    error: str | None = None
    error_status: int | None = None
    error_message: str | None = None
    request_id: str | None = None
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    latency_ms: float | None = None
    finish_reason: str | None = None
    reported_model: str | None = None
    cost: float | None = None
    finished_at: datetime | None = None
    turns: list[dict] = Field(default_factory=list)

    @field_validator("slot", "run_started_at", "run_finished_at", "finished_at", mode="before")
    @classmethod
    def _utc(cls, value):
        return _time(value) if isinstance(value, str) else value

    @field_validator("input_tokens", "output_tokens", "run_planned", mode="before")
    @classmethod
    def _zero(cls, value):
        return 0 if value is None else value


# a run's three times repeat on each of its samples' lines: parsed once
_time = lru_cache(maxsize=1024)(parse_time)


def _parse(line: str, where: str) -> Record | FingerprintRecord:
    try:
        if '"record"' in line and _record_kind(line) == FINGERPRINT_RECORD:
            return FingerprintRecord.model_validate_json(line)
        return Record.model_validate_json(line)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "line"
        message = f"missing {field}" if err["type"] == "missing" else f"{field}: {err['msg']}"
        raise ConfigError([f"{where}: {message}"]) from None


def _record_kind(line: str) -> str | None:
    """The `record` field of a line (None for a sample's line, which has none)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # the sample parser says what is wrong with it
    return value.get("record") if isinstance(value, dict) else None


class Imported(NamedTuple):
    added: int  # samples
    skipped: int  # samples already stored
    fingerprints: int = 0  # fingerprints added (one already stored is skipped)


def import_jsonl(store: Store, lines: Iterable[str], name: str = "<stdin>", batch: int = 2000) -> Imported:
    """Load exported samples and fingerprints.

    Streamed: lines are checked and written a batch at a time inside one transaction, so
    memory stays flat whatever the file's size, and a bad line anywhere rolls everything
    back (nothing is written). Runs whose samples changed get their counters recomputed."""
    added = seen = fingerprints = 0
    with store.begin() as conn:
        run_ids: dict[tuple, int] = {}
        touched: set[int] = set()
        rows: list[dict] = []

        def flush() -> None:
            nonlocal added
            n = store.insert_samples(rows, conn=conn)
            if n:
                touched.update(r["run_id"] for r in rows)
            added += n
            rows.clear()

        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            rec = _parse(line, f"{name}:{i}")
            if isinstance(rec, FingerprintRecord):
                fingerprints += import_record(conn, rec)
                continue
            seen += 1
            key = (rec.model, rec.suite, rec.slot, rec.kind)
            if key not in run_ids:
                run_ids[key] = store.ensure_run(
                    conn, model=rec.model, suite=rec.suite, suite_version=rec.suite_version, slot=rec.slot,
                    kind=rec.kind, status=rec.run_status, started_at=rec.run_started_at or rec.slot,
                    finished_at=rec.run_finished_at, planned=rec.run_planned, in_alert=rec.run_in_alert,
                    verdict=rec.run_verdict)
            rows.append({
                "run_id": run_ids[key], "case_id": rec.case, "sample": rec.sample, "status": rec.status,
                "error": rec.error, "error_status": rec.error_status, "error_message": rec.error_message,
                "request_id": rec.request_id, "input_tokens": rec.input_tokens, "output_tokens": rec.output_tokens,
                "latency_ms": rec.latency_ms, "finish_reason": rec.finish_reason,
                "reported_model": rec.reported_model, "cost": rec.cost, "turns": rec.turns,
                "finished_at": rec.finished_at or rec.slot,
            })
            if len(rows) >= batch:
                flush()
        flush()
        store.refresh_runs(conn, touched)
    return Imported(added, seen - added, fingerprints)
