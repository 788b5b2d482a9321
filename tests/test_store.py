"""The store on SQLite and PostgreSQL: migrations, the unique slot key, samples, export/import."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from canary import reads
from canary.schema import metadata
from canary.store import Store
from canary.transfer import export_lines, import_jsonl, write_jsonl

T0 = datetime(2026, 11, 1, 6, 0)


def sample_row(run_id, case, i, status="passed", **kw):
    row = {"run_id": run_id, "case_id": case, "sample": i, "status": status, "error": None,
           "error_status": None, "error_message": None, "request_id": f"req_{case}_{i}",
           "input_tokens": 10, "output_tokens": 5, "latency_ms": 100.0 + i, "finish_reason": "stop",
           "reported_model": "m-1", "cost": 0.001, "turns": [{"user": "q", "text": "a", "verdicts": []}],
           "finished_at": T0}
    row.update(kw)
    return row


def test_migrations_match_the_models(db_url):
    store = Store(db_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    store.close()
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_rows(db_url):
    store = Store(db_url)
    run_id = store.create_run(model="m", suite="s", suite_version="v1", slot=T0, kind="scheduled",
                              planned=1, owner=None, now=T0)
    store.insert_samples([sample_row(run_id, "c", 0)])
    store.close()
    again = Store(db_url)  # a second start runs the migrations again: nothing changes, nothing lost
    assert again.done_samples(run_id) == {("c", 0)}
    assert set(inspect(again.engine).get_table_names()) >= {"runs", "samples", "alembic_version"}
    again.close()


def test_processes_creating_a_new_database_at_once_all_start(db_url):
    """A daemon and a `canary run` started together on a database that does not exist yet: each
    process migrates it or waits for the other to, none fails (SQLite ran the DDL outside a
    transaction, so the second one found the tables already there)."""
    import subprocess
    import sys
    code = f"from canary.store import Store; Store({db_url!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outcomes = [(p.wait(timeout=60), p.stderr.read()[-500:]) for p in procs]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    store = Store(db_url)
    with store.engine.connect() as conn:
        from canary.store import current_revisions, head_revisions
        assert current_revisions(conn) == head_revisions()
    store.close()


def test_a_slot_is_claimed_once(store):
    kw = dict(model="m", suite="s", suite_version="v1", slot=T0, kind="scheduled", planned=3, owner="a", now=T0)
    first = store.create_run(**kw)
    assert first is not None
    assert store.create_run(**{**kw, "owner": "b"}) is None
    assert store.create_run(**{**kw, "kind": "confirm"}) not in (None, first)


def test_samples_are_stored_once_and_aggregated(store):
    run_id = store.create_run(model="m", suite="s", suite_version="v1", slot=T0, kind="manual",
                              planned=4, owner=None, now=T0)
    rows = [sample_row(run_id, "a", 0), sample_row(run_id, "a", 1, "failed"),
            sample_row(run_id, "b", 0, "error", error="overloaded", error_status=529, latency_ms=None,
                       input_tokens=0, output_tokens=0, cost=None)]
    assert store.insert_samples(rows) == 3
    assert store.insert_samples(rows[:1]) == 0  # already stored: skipped
    run = store.finish_run(run_id, "complete", T0 + timedelta(minutes=1))
    assert (run.passed, run.failed, run.errors) == (1, 1, 1)
    assert (run.input_tokens, run.output_tokens) == (20, 10)
    assert run.latency_p50_ms == 100.5  # median of the answered samples only
    assert abs(run.cost - 0.002) < 1e-12
    assert run.reported_model == "m-1"


def test_insert_samples_stores_what_sqlalchemys_insert_stores_and_counts_only_new_rows(store):
    """insert_samples (on SQLite, multi-row statements with each column's bind processor): every
    column holds what SQLAlchemy's own insert of the same storable rows stores, awkward values
    included; a sample already stored is skipped, not doubled, and not counted."""
    from canary.schema import samples
    from canary.storable import storable
    runs = [store.create_run(model="m", suite="s", suite_version="v1", slot=T0 + timedelta(days=d), kind="manual",
                             planned=3, owner=None, now=T0) for d in range(2)]

    def rows(run_id):
        return [sample_row(run_id, "a", 0, turns=[{"user": "q\u00e9 \x00", "text": "sk-" + "x" * 20,
                                                    "verdicts": [{"passed": True, "n": 2 ** 70}]}]),
                sample_row(run_id, "a", 1, "failed", cost=float("nan"), latency_ms=1.5,
                           finished_at=datetime(2026, 11, 1, 6, 0, 0, 123456)),
                sample_row(run_id, "b", 0, "error", error="overloaded", error_status=529, latency_ms=None, cost=None),
                sample_row(run_id, "b", 1, turns=[{"user": "café — 漢字", "text": "😀 ok\n\t\"q\""}]),  # escaped JSON
                sample_row(run_id, "b", 2, turns=None)]

    with store.begin() as conn:
        conn.execute(samples.insert(), [storable(r) for r in rows(runs[0])])
    written = rows(runs[1])
    assert store.insert_samples(written) == 5
    assert store.insert_samples(written[:1]) == 0  # already stored: nothing doubled, nothing counted
    with store.engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT * FROM samples ORDER BY run_id, case_id, sample").all()
    by_run = {r: [tuple(row)[2:] for row in raw if row[1] == r] for r in runs}  # without id and run_id
    assert len(by_run[runs[1]]) == 5
    assert repr(by_run[runs[0]]) == repr(by_run[runs[1]])  # repr: NaN equals itself
    many = [sample_row(runs[1], f"c{i}", 0) for i in range(300)]  # statements of 256 and 44 rows
    assert store.insert_samples(many) == 300
    assert store.insert_samples(many[250:] + [sample_row(runs[1], "d", 0)]) == 1  # 50 stored, 1 new
    assert len(store.done_samples(runs[1])) == 306


def test_export_then_import_round_trips(db_url, tmp_path):
    source = Store(db_url)
    for day in range(3):
        slot = T0 + timedelta(days=day)
        run_id = source.create_run(model="m", suite="s", suite_version="v1", slot=slot, kind="scheduled",
                                   planned=2, owner=None, now=slot)
        source.insert_samples([sample_row(run_id, "a", 0, finished_at=slot),
                               sample_row(run_id, "a", 1, "error", error="overloaded", error_status=529,
                                          finished_at=slot)])
        source.finish_run(run_id, "complete", slot)
    source.save_verdict(run_id, {"status": "ok", "method": "sigma", "mean": 0.9, "lower": 0.8})  # the last run's
    out = io.StringIO()
    assert write_jsonl(export_lines(source), out) == 6
    lines = out.getvalue().splitlines()
    first = json.loads(lines[0])
    assert first["slot"] == "2026-11-01T06:00:00Z" and first["passed"] is True and first["error"] is None
    assert json.loads(lines[1])["error"] == "overloaded"
    source.close()

    target = Store(f"sqlite:///{tmp_path / 'other.db'}")
    assert import_jsonl(target, io.StringIO(out.getvalue())) == (6, 0, 0)
    assert import_jsonl(target, io.StringIO(out.getvalue())) == (0, 6, 0)  # idempotent
    again = io.StringIO()
    write_jsonl(export_lines(target), again)
    assert again.getvalue() == out.getvalue()
    runs = target.series("m", "s")
    assert [(r.passed, r.errors) for r in runs] == [(1, 1)] * 3
    assert [r.verdict for r in runs] == [None, None, {"status": "ok", "method": "sigma", "mean": 0.9, "lower": 0.8}]
    target.close()


def test_what_an_api_wrote_reads_back_exactly_big_integers_included(store):
    """A tool call's argument beyond 64 bits comes back as the integer it was (the fast JSON
    decoder is kept for what canary writes itself, where it would have read a float)."""
    run_id = store.create_run(model="m", suite="s", suite_version="v1", slot=T0, kind="manual",
                              planned=1, owner=None, now=T0)
    turns = [{"user": "q", "text": "", "tool_calls": [{"name": "f", "arguments": {"n": 2 ** 70, "m": -(2 ** 64)}}],
              "verdicts": []}]
    store.insert_samples([sample_row(run_id, "a", 0, turns=turns)])
    [row] = store.run_samples(run_id)
    assert row.turns[0]["tool_calls"][0]["arguments"] == {"n": 2 ** 70, "m": -(2 ** 64)}
    record = json.loads(next(export_lines(store)))
    assert record["turns"][0]["tool_calls"][0]["arguments"]["n"] == 2 ** 70


@pytest.mark.parametrize("per_query", [1, 200])
def test_latest_samples_reads_each_case_from_its_own_runs(store, monkeypatch, per_query):
    """A case's answer comes from the runs given for it, even when another run holds a newer
    sample of it (a resumed or imported run gets higher ids than the runs after its slot);
    the same when each group of cases is a query of its own."""
    monkeypatch.setattr(reads, "LATEST_GROUPS", per_query)
    first, later = (store.create_run(model="m", suite="s", suite_version="v1", slot=T0 + timedelta(days=d),
                                     kind="scheduled", planned=2, owner=None, now=T0) for d in (0, 1))
    store.insert_samples([sample_row(later, "a", 0, "failed", request_id="later-a")])
    store.insert_samples([sample_row(first, "a", 0, "failed", request_id="first-a"),  # stored after: a higher id
                          sample_row(first, "b", 0, "failed", request_id="first-b"),
                          sample_row(later, "b", 0, "passed")])
    got = store.latest_samples({"a": [later], "b": [first, later]}, "failed")
    assert {c: r.request_id for c, r in got.items()} == {"a": "later-a", "b": "first-b"}
    assert store.latest_samples({"a": [], "c": [first]}, "failed") == {}


def test_export_redacts_rows_stored_before_redaction_and_keeps_the_json(store):
    """A row written raw (by a canary that did not redact yet) leaves export redacted, each
    line still valid JSON, whether the secret sits in a text field or inside `turns`."""
    from canary import redact
    from canary.schema import samples
    key, known = "sk-ant-0123456789abcdefghijKLMN", "gw-credential-7f3a9c2e"
    redact.remember([known])
    run_id = store.create_run(model="m", suite="s", suite_version="v1", slot=T0, kind="manual",
                              planned=3, owner=None, now=T0)
    bearer = "eyJhbGciOiJIUzI1NiJ9.payload.signature"  # not sk- shaped: only the Bearer shape hides it
    raw = [sample_row(run_id, "a", 0, error_message=f"HTTP 401: bad key {key}"),
           sample_row(run_id, "a", 1, turns=[{"user": f'say "{known}"', "text": f"Bearer {bearer}\n\"quoted\"",
                                              "verdicts": [{"passed": True, "explanation": key}]}]),
           # alone in its sample, quoted in the reply: escaped in the stored JSON text
           sample_row(run_id, "b", 0, turns=[{"user": "q", "text": 'use {"api_key": "gw-7f3a9c2e11d0"}', "verdicts": []}])]
    with store.begin() as conn:
        conn.execute(samples.insert(), raw)
    store.finish_run(run_id, "complete", T0)
    lines = list(export_lines(store))
    records = [json.loads(line) for line in lines]
    assert records[0]["error_message"] == "HTTP 401: bad key ***"
    assert records[1]["turns"][0]["user"] == 'say "***"' and records[1]["turns"][0]["text"] == 'Bearer ***\n"quoted"'
    assert records[1]["turns"][0]["verdicts"][0]["explanation"] == "***"
    assert records[2]["turns"][0]["text"] == 'use {"api_key": "***"}'
    assert all(secret not in "".join(lines) for secret in (key, known, bearer, "gw-7f3a9c2e11d0"))


def test_import_rejects_a_bad_line_and_writes_nothing(store):
    good = json.dumps({"model": "m", "suite": "s", "suite_version": "v", "slot": "2026-11-01T06:00:00Z",
                       "case": "a", "sample": 0, "status": "passed"})
    bad = json.dumps({"model": "m", "suite": "s", "slot": "2026-11-01T06:00:00Z", "case": "a", "sample": 1,
                      "status": "passed"})
    try:
        import_jsonl(store, io.StringIO(good + "\n" + bad + "\n"), name="h.jsonl")
    except Exception as exc:
        assert "h.jsonl:2: missing suite_version" in str(exc)
    else:
        raise AssertionError("a bad line must be refused")
    assert store.series("m", "s") == []


def test_import_names_the_line_of_a_bad_fingerprint_and_writes_nothing(store):
    good = json.dumps({"model": "m", "suite": "s", "suite_version": "v", "slot": "2026-11-01T06:00:00Z",
                       "case": "a", "sample": 0, "status": "passed"})
    fingerprint = {"record": "fingerprint", "model": "m", "version": "abc", "created_at": "2026-11-01T06:00:00Z",
                   "inputs": [{"prompt": "tea", "reference": {"yes": 12, "no": 8}}]}
    for bad, message in (({"inputs": []}, "h.jsonl:2: inputs:"), ({"created_at": None}, "h.jsonl:2: created_at:"),
                         ({"inputs": [{"prompt": "tea", "reference": {"yes": "many"}}]}, "h.jsonl:2: inputs.0.reference")):
        with pytest.raises(Exception) as got:
            import_jsonl(store, io.StringIO(good + "\n" + json.dumps({**fingerprint, **bad}) + "\n"), name="h.jsonl")
        assert message in str(got.value)
    assert store.series("m", "s") == []  # the good line before it was rolled back too
    # a logprob mean that was not finite is exported as null (JSON has no -inf): left out
    fingerprint["inputs"][0]["logprobs"] = {"yes": -0.2, "no": None}
    assert import_jsonl(store, io.StringIO(good + "\n" + json.dumps(fingerprint))) == (1, 0, 1)
    from canary.fingerprint.probe import current
    assert current(store, "m").logprobs == {"tea": {"yes": -0.2}}


def test_import_checks_types_and_tolerates_missing_latency(store):
    base = {"model": "m", "suite": "s", "suite_version": "v", "slot": "2026-11-01T06:00:00Z", "case": "a",
            "status": "passed"}
    for bad, message in (({"sample": "zz"}, "h.jsonl:1: sample:"), ({"sample": 0, "turns": "oops"}, "turns:"),
                         ({"sample": 0, "status": "fine"}, "status:")):
        try:
            import_jsonl(store, io.StringIO(json.dumps({**base, **bad}) + "\n"), name="h.jsonl")
        except Exception as exc:
            assert message in str(exc)
        else:
            raise AssertionError(f"{bad} must be refused")
    lines = [json.dumps({**base, "sample": 0, "latency_ms": 80.0}), json.dumps({**base, "sample": 1})]
    assert import_jsonl(store, io.StringIO("\n".join(lines))) == (2, 0, 0)
    [run] = store.series("m", "s")
    assert run.latency_p50_ms == 80.0


def test_alembic_cli_upgrade_on_an_empty_database(tmp_path, monkeypatch):
    """`alembic upgrade head` from the repo root builds the same schema as the models."""
    from alembic import command
    from alembic.config import Config
    from conftest import REPO
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CANARY_DATABASE_URL", url)
    command.upgrade(Config(str(REPO / "alembic.ini")), "head")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_upgrading_an_old_database_keeps_its_rows(db_url):
    """A database made by the first revision, with rows, upgrades to head with nothing lost."""
    from alembic import command
    from canary.store import alembic_config, make_engine
    from sqlalchemy import text
    engine = make_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        # rows as the first revision's code wrote them (today's code knows columns it lacks)
        conn.execute(text("INSERT INTO runs (model, suite, suite_version, slot, kind, status, started_at, "
                          "finished_at, planned, passed, failed, errors, input_tokens, output_tokens) VALUES "
                          "('m', 's', 'v1', :t, 'scheduled', 'complete', :t, :t, 1, 1, 0, 0, 10, 5)"), {"t": T0})
        run_id = conn.execute(text("SELECT id FROM runs")).scalar()
        conn.execute(text("INSERT INTO samples (run_id, case_id, sample, status, input_tokens, output_tokens, "
                          "turns, finished_at) VALUES (:r, 'c', 0, 'passed', 10, 5, '[]', :t)"), {"r": run_id, "t": T0})
    store = Store(db_url)  # upgrades to head
    assert store.done_samples(run_id) == {("c", 0)}
    row = store.run(run_id)
    assert row.assessed_at == T0 and row.in_alert is False  # 0003 marks finished runs judged
    assert row.cases == {"c": [1, 0, 0]}  # 0005 counts each finished run's cases
    assert {"alerts", "outbox", "acks"} <= set(inspect(store.engine).get_table_names())
    store.close()
    engine.dispose()


def test_case_counts_per_run_and_case(store):
    from canary.reads import CaseCount
    now = datetime(2026, 11, 2, 6)
    a = store.create_run(model="m", suite="s", suite_version="v", slot=now, kind="scheduled", planned=4,
                         owner="o", now=now)
    b = store.create_run(model="m", suite="s", suite_version="v", slot=now + timedelta(days=1), kind="scheduled",
                         planned=2, owner="o", now=now)
    store.insert_samples([sample_row(a, "x", 0), sample_row(a, "x", 1, "failed"), sample_row(a, "y", 0, "error"),
                          sample_row(a, "y", 1), sample_row(b, "x", 0, "failed")])
    counts = store.case_counts([a, b])
    assert counts[a] == {"x": CaseCount(1, 1, 0), "y": CaseCount(1, 0, 1)}
    assert counts[b] == {"x": CaseCount(0, 1, 0)}
    assert (counts[a]["x"] + counts[b]["x"]).answered == 3 and store.case_counts([]) == {}


def test_finished_runs_keep_their_case_counts_and_budgets_read_the_day(store):
    from canary.reads import CaseCount
    run_id = store.create_run(model="m", suite="s", suite_version="v", slot=T0, kind="scheduled", planned=3,
                              owner="o", now=T0)
    store.insert_samples([sample_row(run_id, "x", 0), sample_row(run_id, "x", 1, "error"),
                          sample_row(run_id, "y", 0, "failed", finished_at=T0 + timedelta(days=1))])
    assert store.case_counts([run_id])[run_id] == {"x": CaseCount(1, 0, 1), "y": CaseCount(0, 1, 0)}  # from samples
    assert store.finish_run(run_id, "complete", T0).cases == {"x": [1, 0, 1], "y": [0, 1, 0]}
    assert store.case_counts([run_id])[run_id] == {"x": CaseCount(1, 0, 1), "y": CaseCount(0, 1, 0)}  # the column
    assert store.spent_since("m", T0 + timedelta(hours=12)) == (15, 0.001)  # only y finished that day
    assert store.spent_since("other", T0) == (0, 0.0)
