"""Fingerprints in the JSONL export (canary/transfer.py): one line a stored fingerprint, with its
border inputs and their reference distributions, and back.

The probes are runs and samples, exported like any; the reference they are judged against
lives in its own tables. Without it, a model moved to another database would need `canary
fingerprint init` again, whose new reference could be taken from a model already swapped.
A fingerprint already stored (same model and version) is skipped, so an import stays
idempotent. Its lines come after the samples and carry `"record": "fingerprint"`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, select

from .. import redact
from ..clock import iso, parse_time
from ..schema import fingerprint_inputs, fingerprints
from ..store import Store
from . import SUITE

RECORD = "fingerprint"  # the `record` field of a fingerprint's line (a sample's line has none)


def export_records(store: Store, *, model: str | None = None, suite: str | None = None) -> Iterator[dict]:
    """Every stored fingerprint of the model (or of all), oldest first, as a JSON-ready dict;
    none when the export is of another suite. Whole whatever `--since`: a probe after that
    date is judged against a reference made before it. What an API wrote (the tokens of the
    references and logprobs) is redacted; a prompt is an id, as a sample's case is (its
    probes' case ids), and is kept as it is."""
    if suite is not None and suite != SUITE:
        return
    q = select(fingerprints).order_by(fingerprints.c.created_at, fingerprints.c.id)
    if model is not None:
        q = q.where(fingerprints.c.model == model)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
        inputs: dict[int, list[dict]] = {}
        for i in conn.execute(select(fingerprint_inputs).where(fingerprint_inputs.c.fingerprint_id.in_(
                [r.id for r in rows])).order_by(fingerprint_inputs.c.fingerprint_id, fingerprint_inputs.c.position)):
            inputs.setdefault(i.fingerprint_id, []).append(
                {"prompt": i.prompt, **redact.value({"reference": i.reference, "logprobs": i.logprobs})})
    for r in rows:
        yield {"record": RECORD, **redact.value({"model": r.model, "version": r.version, "origin": r.origin}),
               "created_at": iso(r.created_at), "temperature": r.temperature, "logprobs": r.logprobs,
               "candidates": r.candidates, "border": r.border, "calls": r.calls, "input_tokens": r.input_tokens,
               "output_tokens": r.output_tokens, "cost": r.cost, "inputs": inputs.get(r.id, [])}


class Input(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str = Field(min_length=1, max_length=200)
    reference: dict[str, int]
    # a mean that was not finite (a token given -inf) is exported as null: left out on import
    logprobs: dict[str, float | None] | None = None


class FingerprintRecord(BaseModel):
    """A fingerprint's line (unknown fields are ignored, as in a sample's line)."""

    model_config = ConfigDict(extra="ignore")
    record: Literal["fingerprint"]
    model: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=64)
    origin: Literal["init", "ack"] = "init"
    created_at: datetime
    temperature: float | None = None
    logprobs: bool = False
    candidates: int = Field(default=0, ge=0)
    border: int = Field(default=0, ge=0)
    calls: int = Field(default=0, ge=0)
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost: float | None = None
    inputs: list[Input] = Field(min_length=1)

    @field_validator("created_at", mode="before")
    @classmethod
    def _utc(cls, value):
        return parse_time(value) if isinstance(value, str) else value


def import_record(conn, rec: FingerprintRecord) -> bool:
    """Store the fingerprint unless the model already has it (same version); whether it was new."""
    if conn.execute(select(fingerprints.c.id).where(and_(
            fingerprints.c.model == rec.model, fingerprints.c.version == rec.version))).first() is not None:
        return False
    fp_id = conn.execute(fingerprints.insert().values(
        model=rec.model, version=rec.version, origin=rec.origin, created_at=rec.created_at,
        temperature=rec.temperature, logprobs=rec.logprobs, candidates=rec.candidates, border=rec.border,
        calls=rec.calls, input_tokens=rec.input_tokens, output_tokens=rec.output_tokens, cost=rec.cost)
        .returning(fingerprints.c.id)).scalar()
    conn.execute(fingerprint_inputs.insert(), [
        {"fingerprint_id": fp_id, "position": n, "prompt": i.prompt, "reference": i.reference,
         "logprobs": None if i.logprobs is None else {t: v for t, v in i.logprobs.items() if v is not None}}
        for n, i in enumerate(rec.inputs)])
    return True
