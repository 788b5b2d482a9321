"""Export and import of stored samples as JSONL, one sample an object (format in the README).

Import is idempotent: a sample already stored (same model, suite, slot, kind, case, index)
is skipped, so the same file can be loaded twice, or history moved between databases.
Every exported record passes through the redaction (redact.py), so a key stored by a
version of canary that did not redact yet is not printed either.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import IO, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import redact
from .alerts import alert_intervals
from .errors import ConfigError
from .store import Store

def iso(dt: datetime | None) -> str | None:
    return dt.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z") if dt else None


def parse_time(value: str | None) -> datetime | None:
    """ISO 8601 (a trailing Z or an offset allowed) to naive UTC."""
    if value is None:
        return None
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.astimezone(timezone.utc).replace(tzinfo=None) if dt.tzinfo else dt


def export_records(store: Store, **filters) -> Iterator[dict]:
    intervals: dict[tuple[str, str], list] = {}
    for r in store.export_rows(**filters):
        series = (r["run_model"], r["run_suite"])
        if series not in intervals:
            intervals[series] = alert_intervals(store, *series, "quality")
        in_alert = r["run_in_alert"] or any(lo <= r["run_id"] and (hi is None or r["run_id"] < hi)
                                            for lo, hi in intervals[series])
        yield redact.value({
            "model": r["run_model"], "suite": r["run_suite"], "suite_version": r["run_suite_version"],
            "slot": iso(r["run_slot"]), "kind": r["run_kind"], "run_status": r["run_status"],
            "run_started_at": iso(r["run_started_at"]), "run_finished_at": iso(r["run_finished_at"]),
            "run_planned": r["run_planned"], "run_in_alert": bool(in_alert),
            "case": r["case_id"], "sample": r["sample"], "status": r["status"],
            "passed": r["status"] == "passed", "error": r["error"], "error_status": r["error_status"],
            "error_message": r["error_message"], "request_id": r["request_id"],
            "input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"],
            "latency_ms": r["latency_ms"], "finish_reason": r["finish_reason"],
            "reported_model": r["reported_model"], "cost": r["cost"],
            "finished_at": iso(r["finished_at"]), "turns": r["turns"],
        })


def write_jsonl(records, out: IO[str]) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
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
        return parse_time(value) if isinstance(value, str) else value

    @field_validator("input_tokens", "output_tokens", "run_planned", mode="before")
    @classmethod
    def _zero(cls, value):
        return 0 if value is None else value


def _parse(line: str, where: str) -> Record:
    try:
        return Record.model_validate_json(line)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "line"
        message = f"missing {field}" if err["type"] == "missing" else f"{field}: {err['msg']}"
        raise ConfigError([f"{where}: {message}"]) from None


def import_jsonl(store: Store, lines: IO[str], name: str = "<stdin>", batch: int = 500) -> tuple[int, int]:
    """Load exported samples; (added, skipped as already stored). Every line is checked first."""
    records = [_parse(line, f"{name}:{i}") for i, line in enumerate(lines, 1) if line.strip()]
    added = 0
    with store.begin() as conn:
        run_ids: dict[tuple, int] = {}
        rows = []
        for rec in records:
            key = (rec.model, rec.suite, rec.slot, rec.kind)
            if key not in run_ids:
                run_ids[key] = store.ensure_run(
                    conn, model=rec.model, suite=rec.suite, suite_version=rec.suite_version, slot=rec.slot,
                    kind=rec.kind, status=rec.run_status, started_at=rec.run_started_at or rec.slot,
                    finished_at=rec.run_finished_at, planned=rec.run_planned, in_alert=rec.run_in_alert)
            rows.append({
                "run_id": run_ids[key], "case_id": rec.case, "sample": rec.sample, "status": rec.status,
                "error": rec.error, "error_status": rec.error_status, "error_message": rec.error_message,
                "request_id": rec.request_id, "input_tokens": rec.input_tokens, "output_tokens": rec.output_tokens,
                "latency_ms": rec.latency_ms, "finish_reason": rec.finish_reason,
                "reported_model": rec.reported_model, "cost": rec.cost, "turns": rec.turns,
                "finished_at": rec.finished_at or rec.slot,
            })
        for start in range(0, len(rows), batch):
            added += store.insert_samples(rows[start:start + batch], conn=conn)
        store.refresh_runs(conn, run_ids.values())
    return added, len(records) - added
