"""Export and import of stored samples as JSONL, one sample an object (format in the README).

Import is idempotent: a sample already stored (same model, suite, slot, kind, case, index)
is skipped, so the same file can be loaded twice, or history moved between databases.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import IO, Iterator

from .errors import ConfigError
from .store import Store

REQUIRED = ("model", "suite", "suite_version", "slot", "case", "sample", "status")
STATUSES = ("passed", "failed", "error")


def iso(dt: datetime | None) -> str | None:
    return dt.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z") if dt else None


def parse_time(value: str | None) -> datetime | None:
    """ISO 8601 (a trailing Z or an offset allowed) to naive UTC."""
    if value is None:
        return None
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.astimezone(timezone.utc).replace(tzinfo=None) if dt.tzinfo else dt


def export_records(store: Store, **filters) -> Iterator[dict]:
    for r in store.export_rows(**filters):
        yield {
            "model": r["run_model"], "suite": r["run_suite"], "suite_version": r["run_suite_version"],
            "slot": iso(r["run_slot"]), "kind": r["run_kind"], "run_status": r["run_status"],
            "run_started_at": iso(r["run_started_at"]), "run_finished_at": iso(r["run_finished_at"]),
            "run_planned": r["run_planned"],
            "case": r["case_id"], "sample": r["sample"], "status": r["status"],
            "passed": r["status"] == "passed", "error": r["error"], "error_status": r["error_status"],
            "error_message": r["error_message"], "request_id": r["request_id"],
            "input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"],
            "latency_ms": r["latency_ms"], "finish_reason": r["finish_reason"],
            "reported_model": r["reported_model"], "cost": r["cost"],
            "finished_at": iso(r["finished_at"]), "turns": r["turns"],
        }


def write_jsonl(records, out: IO[str]) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        n += 1
    return n


def _parse(line: str, where: str) -> dict:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{where}: not JSON ({exc.msg})"]) from None
    if not isinstance(rec, dict):
        raise ConfigError([f"{where}: each line must be a JSON object"])
    missing = [k for k in REQUIRED if rec.get(k) is None]
    if missing:
        raise ConfigError([f"{where}: missing {', '.join(missing)}"])
    if rec["status"] not in STATUSES:
        raise ConfigError([f"{where}: status must be one of {', '.join(STATUSES)}"])
    try:
        rec["slot"] = parse_time(rec["slot"])
        for key in ("run_started_at", "run_finished_at", "finished_at"):
            rec[key] = parse_time(rec.get(key))
    except ValueError as exc:
        raise ConfigError([f"{where}: bad timestamp ({exc})"]) from None
    return rec


def import_jsonl(store: Store, lines: IO[str], name: str = "<stdin>", batch: int = 500) -> tuple[int, int]:
    """Load exported samples; (added, skipped as already stored). Every line is checked first."""
    records = [_parse(line, f"{name}:{i}") for i, line in enumerate(lines, 1) if line.strip()]
    added = 0
    with store.begin() as conn:
        run_ids: dict[tuple, int] = {}
        rows = []
        for rec in records:
            key = (rec["model"], rec["suite"], rec["slot"], rec.get("kind") or "scheduled")
            if key not in run_ids:
                run_ids[key] = store.ensure_run(
                    conn, model=key[0], suite=key[1], suite_version=rec["suite_version"], slot=key[2],
                    kind=key[3], status=rec.get("run_status") or "complete",
                    started_at=rec.get("run_started_at") or key[2], finished_at=rec.get("run_finished_at"),
                    planned=rec.get("run_planned") or 0)
            rows.append({
                "run_id": run_ids[key], "case_id": rec["case"], "sample": int(rec["sample"]),
                "status": rec["status"], "error": rec.get("error"), "error_status": rec.get("error_status"),
                "error_message": rec.get("error_message"), "request_id": rec.get("request_id"),
                "input_tokens": rec.get("input_tokens") or 0, "output_tokens": rec.get("output_tokens") or 0,
                "latency_ms": rec.get("latency_ms"), "finish_reason": rec.get("finish_reason"),
                "reported_model": rec.get("reported_model"), "cost": rec.get("cost"),
                "turns": rec.get("turns") or [], "finished_at": rec.get("finished_at") or key[2],
            })
        for start in range(0, len(rows), batch):
            added += store.insert_samples(rows[start:start + batch], conn=conn)
        store.refresh_runs(conn, run_ids.values())
    return added, len(records) - added
