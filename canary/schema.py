"""The SQL tables, as SQLAlchemy Core metadata. Every change here is an alembic migration too.

All timestamps are naive UTC. Runs are unique per (model, suite, slot, kind): a scheduled
slot runs once, however many daemons race for it; its confirmation run is kind `confirm`.
"""
from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer,
                        MetaData, String, Table, Text, UniqueConstraint, false)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

class Json(TypeDecorator):
    """JSON, stored as JSONB on PostgreSQL. The PostgreSQL dialect is loaded only when a
    PostgreSQL database is used (it costs a tenth of a second of start-up otherwise)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

runs = Table(
    "runs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("suite_version", String(64), nullable=False),
    Column("slot", DateTime, nullable=False),  # the scheduled time (or the start of a manual run)
    Column("kind", String(16), nullable=False),  # scheduled | manual | confirm | compare (never in a series)
    Column("status", String(24), nullable=False),  # running | complete | interrupted | budget_exhausted
    Column("owner", String(200)),  # the replica that holds the run
    Column("heartbeat_at", DateTime),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("planned", Integer, nullable=False),  # samples the run is meant to have
    Column("passed", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cost", Float),
    Column("latency_p50_ms", Float),
    Column("reported_model", String(200)),
    Column("assessed_at", DateTime),  # when its signals were judged (a crash in between: judged later)
    # imported history: the source database had this run inside a quality alert (out of baselines)
    Column("in_alert", Boolean, nullable=False, default=False, server_default=false()),
    # per case id: [passed, failed, errors], computed from the samples when the run finishes
    Column("cases", Json),
    # the quality verdict of the series' point this run opened (pooled with its confirmation
    # run): status, method, rate, mean (expected rate), lower (floor), ... (detect.Verdict.stored)
    Column("verdict", Json),
    # a fingerprint probe's measurement: distance, logprob change, distance per input
    # (fingerprint.rule.Probe.stored), kept when the probe is first judged
    Column("probe", Json),
    UniqueConstraint("model", "suite", "slot", "kind", name="uq_runs_model_suite_slot_kind"),
)
Index("ix_runs_series", runs.c.model, runs.c.suite, runs.c.slot)

samples = Table(
    "samples", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("sample", Integer, nullable=False),
    Column("status", String(8), nullable=False),  # passed | failed | error
    Column("error", String(24)),  # the error class, when status is error
    Column("error_status", Integer),  # its HTTP status, if any
    Column("error_message", Text),
    Column("request_id", String(200)),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("latency_ms", Float),
    Column("finish_reason", String(40)),
    Column("reported_model", String(200)),
    Column("cost", Float),
    Column("turns", Json, nullable=False),  # per turn: user, text, tool_calls, thinking, verdicts
    Column("finished_at", DateTime, nullable=False),
    UniqueConstraint("run_id", "case_id", "sample", name="uq_samples_run_case_sample"),
)
Index("ix_samples_finished_at", samples.c.finished_at)  # the daily budget reads only the day's samples

# An alert is one episode of one signal of one series: opened by a breaching run, closed by
# a recovering run or an ack. At most one is open per (model, suite, kind).
alerts = Table(
    "alerts", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),  # "" for alerts about canary itself
    Column("suite", String(200), nullable=False),
    Column("kind", String(24), nullable=False),  # quality | availability | drift | model_changed | config_error
    Column("state", String(8), nullable=False),  # open | closed
    Column("opened_at", DateTime, nullable=False),
    Column("opened_run_id", Id),
    Column("closed_at", DateTime),
    Column("closed_run_id", Id),
    Column("closed_by", String(16)),  # recovered | ack
    Column("details", Json, nullable=False),  # the verdict's numbers, failing cases, ...
)
# Partial on both databases: migration 0002 creates it WHERE state = 'open' on PostgreSQL too.
# Naming `postgresql_where` here would load the PostgreSQL dialect (asyncpg included) at every
# start of every command, 60 ms, for nothing: queries never read index definitions, and
# alembic's comparison of the tables with this metadata does not compare WHERE clauses.
Index("ix_alerts_one_open", alerts.c.model, alerts.c.suite, alerts.c.kind, unique=True,
      sqlite_where=alerts.c.state == "open")

# One row per Slack message, waiting here until Slack accepts it: a Slack outage delays a
# message, never drops it. A message carries alert events (outbox_alerts): the events of one
# model in one run go out together, as one message per action.
outbox = Table(
    "outbox", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event", String(16), nullable=False),  # opened | recovered: the action of every event it carries
    Column("message", Json, nullable=False),  # {"text": ..., "blocks": [...]}
    Column("state", String(12), nullable=False),  # pending | sent | logged (no Slack configured) | failed (for good)
    Column("created_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("claimed_by", String(200)),
    Column("claimed_until", DateTime),
    Column("sent_at", DateTime),
    Column("last_error", Text),
)

# The alert events a message carries: each event of an alert (opened, recovered) is queued
# once, and a message waits for the earlier messages of every alert it carries.
outbox_alerts = Table(
    "outbox_alerts", metadata,
    Column("outbox_id", Id, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True),
    Column("alert_id", Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("event", String(16), nullable=False),
    UniqueConstraint("alert_id", "event", name="uq_outbox_alerts_alert_event"),
)

# `canary ack`: the series' baseline restarts at this run.
acks = Table(
    "acks", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("run_id", Id, nullable=False),
    Column("at", DateTime, nullable=False),
)
Index("ix_acks_series", acks.c.model, acks.c.suite)

# `canary fingerprint init` (or an ack, which re-references): one row per reference of a model.
# The newest row of a model is its current fingerprint; probes are runs of suite "fingerprint"
# whose suite_version is the row's version.
fingerprints = Table(
    "fingerprints", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("version", String(64), nullable=False),  # runs.suite_version of the probes against it
    Column("origin", String(8), nullable=False),  # init | ack
    Column("created_at", DateTime, nullable=False),
    Column("temperature", Float),  # the temperature sent (None: the API's default)
    Column("logprobs", Boolean, nullable=False),  # the API returned first-token logprobs
    Column("candidates", Integer, nullable=False),  # prompts tried at init
    Column("border", Integer, nullable=False),  # of which had more than one answer
    Column("calls", Integer, nullable=False),  # one-token calls it took (init or ack: its own)
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cost", Float),
    UniqueConstraint("model", "version", name="uq_fingerprints_model_version"),
)
Index("ix_fingerprints_model", fingerprints.c.model, fingerprints.c.id)

fingerprint_inputs = Table(
    "fingerprint_inputs", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint_id", Id, ForeignKey("fingerprints.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("prompt", String(200), nullable=False),
    Column("reference", Json, nullable=False),  # {first token: count}
    Column("logprobs", Json),  # {token: mean first-token logprob} where the API returns them
    UniqueConstraint("fingerprint_id", "position", name="uq_fingerprint_inputs_fingerprint_id"),
)

# What `canary status` shows per series: the smallest drop the detector catches within 3 runs,
# simulated from the cases' measured pass rates (canary/power.py). One row per suite version
# and detection settings; status only reads it (the simulation runs after a run, or in calibrate).
sensitivity = Table(
    "sensitivity", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("suite_version", String(64), nullable=False),
    Column("settings", String(400), nullable=False),  # the detection settings and repeat simulated
    Column("min_drop", Float),  # points; null when no drop up to the largest tried is caught
    Column("trials", Integer, nullable=False),
    Column("source", String(16), nullable=False),  # history (the series' own runs) | calibrate
    Column("computed_at", DateTime, nullable=False),
    UniqueConstraint("model", "suite", "suite_version", "settings", name="uq_sensitivity_series_settings"),
)
