"""The read commands' database without SQLAlchemy (dbapi.Reader): what it reads, on SQLite and
PostgreSQL, has the types and values the Store's writes put there; it serves only a database
at the current schema, and a driver's failure is a StorageError (exit 5), not a traceback."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from canary import alerts, reports
from canary.config import load_config
from canary.dbapi import Reader, open_reader
from canary.errors import StorageError
from canary.fingerprint.series import current, series
from canary.schema import fingerprint_inputs, fingerprints, runs, samples
from canary.store import Store

T0 = datetime(2026, 11, 1, 6, 0, 0, 123456)


def _run(store: Store, day: int, kind: str = "scheduled", failed: int = 1, turns=None) -> int:
    run_id = store.create_run(model="m", suite="s", suite_version="v1", slot=T0 + timedelta(days=day), kind=kind,
                              planned=3, owner=None, now=T0)
    store.insert_samples([
        {"run_id": run_id, "case_id": case, "sample": 0, "status": "failed" if i < failed else "passed",
         "request_id": f"req-{run_id}-{case}", "turns": turns or [{"user": "q", "text": "a", "verdicts": []}],
         "finished_at": T0 + timedelta(days=day)}
        for i, case in enumerate(("a", "b", "c"))])
    store.finish_run(run_id, "complete", T0 + timedelta(days=day, hours=1))
    return run_id


def test_the_reader_reads_what_the_store_wrote(db_url):
    store = Store(db_url)
    first = _run(store, 0)
    second = _run(store, 1, failed=2, turns=[{"user": "q", "text": "big", "verdicts": [{"n": 2 ** 70}]}])
    confirm = _run(store, 1, kind="confirm")
    alerts.open_alert(store, model="m", suite="s", kind="quality", run_id=second, details={"reason": "r"},
                      message={"text": "t"}, now=T0)
    store.save_sensitivity(model="m", suite="s", suite_version="v1", settings="k", min_drop=7.5, trials=20,
                           source="history", now=T0)
    store.add_ack("m", "s", first, T0)
    with store.begin() as conn:  # what monitor marks on the run that opened an alert
        conn.execute(runs.update().where(runs.c.id == second).values(in_alert=True))
    with open_reader(db_url) as reader:  # closed even when an assertion fails: its locks would hang the teardown
        assert isinstance(reader, Reader)

        rows, more = reader.series_runs("m", "s")
        assert [r[0] for r in rows] == [first, second, confirm] and not more
        assert rows[0][1] == T0 and isinstance(rows[0][1], datetime)  # the slot, microseconds kept
        assert rows[1][7] is True and rows[0][7] is False  # in_alert, a bool on both databases
        assert rows[0][-1] == {"a": [0, 1, 0], "b": [1, 0, 0], "c": [1, 0, 0]}  # the per-case counts, decoded
        last, more = reader.series_runs("m", "s", last=1, cases=False)  # a slot is never cut from its confirmation
        assert [r[0] for r in last] == [] and more
        until, _ = reader.series_runs("m", "s", until=T0)
        assert [r[0] for r in until] == [first]
        assert reader.last_ack("m", "s") == first and reader.last_ack("m", "other") is None
        [latest] = reader.latest_runs()
        assert (latest.id, latest.slot, latest.kind, latest.status) == (confirm, T0 + timedelta(days=1), "confirm",
                                                                          "complete")
        assert reader.alert_intervals("m", "s", "quality") == [(second, None)]
        assert [tuple(k) for k in reader.open_alert_keys()] == [("m", "s", "quality")]
        [(key, sens)] = reader.sensitivities().items()
        assert key == ("m", "s", "v1", "k") and sens.min_drop == 7.5 and sens.computed_at == T0
        assert reader.case_results([second]) == {second: {"a": (0, 1), "b": (0, 1), "c": (1, 1)}}
        [span] = reader.alert_episodes()
        assert (span.opened_run_id, span.state, span.opened_at, span.closed_at) == (second, "open", T0, None)
        [alert] = reader.open_alerts("m", "s")
        assert (alert.id, alert.kind, alert.opened_at, alert.details) == (span.id, "quality", T0, {"reason": "r"})
        assert reader.open_alerts() == [alert] and reader.open_alerts("m", "other") == []
        listed = reports.alert_list(reader)  # `canary alerts`, through the driver and through the Store
        assert listed == reports.alert_list(store) and listed[0]["summary"] == "r"
        [message] = listed[0]["messages"]
        assert (message["event"], message["text"], message["state"]) == ("opened", "t", "pending")
        assert isinstance(message["next_attempt_at"], datetime)
        got = reader.latest_samples({"a": [first, second], "b": [first]}, "failed")
        assert got["a"].run_id == second and got["a"].turns[0]["verdicts"][0]["n"] == 2 ** 70  # not a float
        assert "b" not in got and got["a"].finished_at == T0 + timedelta(days=1)
        failed = reader.failed_samples([first, second])  # what `canary failures` shows: newest run first
        assert [(s.run_id, s.case_id) for s in failed] == [(second, "a"), (second, "b"), (first, "a")]
        assert failed[0].turns[0]["verdicts"][0]["n"] == 2 ** 70 and failed[0].request_id == f"req-{second}-a"
        counts = reader.case_counts([second])[second]
        assert (counts["a"].failed, counts["a"].answered, counts["c"].passed) == (1, 1, 1)
        run = reader.series_run(confirm)
        assert (run.id, run.model, run.kind, run.status, run.slot, run.passed, run.failed) == \
            (confirm, "m", "confirm", "complete", T0 + timedelta(days=1), 2, 1)
        assert reader.series_run(10 ** 9) is None
        # a read leaves no transaction open: a command that fails after it holds no locks
        idle = reader.conn.in_transaction is False if reader.dialect == "sqlite" else \
            reader.conn.info.transaction_status.name == "IDLE"
        assert idle

        reader.save_verdict(first, {"status": "ok", "mean": 0.5})  # kept, as the Store keeps it
        assert store.run(first).verdict == {"status": "ok", "mean": 0.5}
        assert reader.series_runs("m", "s")[0][0][12] == {"status": "ok", "mean": 0.5}
    store.close()


def _fingerprint_with_probes(store: Store) -> tuple[int, list[int]]:
    """A fingerprint of model m (inputs a and b) and four probes: complete, of an older
    version, complete, still running. Each has an errored and an answered sample of a."""
    with store.begin() as conn:
        fp = conn.execute(fingerprints.insert().values(
            model="m", version="fp1", origin="init", created_at=T0, temperature=0.0, logprobs=True, candidates=300,
            border=12, calls=99).returning(fingerprints.c.id)).scalar()
        conn.execute(fingerprint_inputs.insert(), [
            {"fingerprint_id": fp, "position": 1, "prompt": "b", "reference": {"Yes": 3, "No": 1}, "logprobs": None},
            {"fingerprint_id": fp, "position": 0, "prompt": "a", "reference": {"é": 4}, "logprobs": {"é": -0.25}}])
    probes = []
    for day, version, status in ((0, "fp1", "complete"), (1, "fp0", "complete"), (2, "fp1", "complete"),
                                 (3, "fp1", "running")):
        run_id = store.create_run(model="m", suite="fingerprint", suite_version=version, slot=T0 + timedelta(days=day),
                                  kind="scheduled", planned=2, owner=None, now=T0)
        store.insert_samples([
            {"run_id": run_id, "case_id": "a", "sample": i, "status": "passed" if i else "error", "request_id": None,
             "turns": [{"user": "a", "text": "é", "top_logprobs": [["é", -0.5]], "verdicts": []}],
             "finished_at": T0 + timedelta(days=day)} for i in range(2)])
        if status == "complete":
            store.finish_run(run_id, status, T0 + timedelta(days=day, hours=1))
        probes.append(run_id)
    return fp, probes


def test_the_reader_reads_a_fingerprint_and_its_probes(db_url):
    """What `status`, `history` and `report` read of a fingerprinted model, typed as the Store wrote it."""
    store = Store(db_url)
    fp, probes = _fingerprint_with_probes(store)
    reader = open_reader(db_url)

    row, inputs = reader.fingerprint("m")
    assert (row.id, row.version, row.created_at, row.temperature, row.logprobs, row.cost) == (fp, "fp1", T0, 0.0, True,
                                                                                              None)
    assert inputs == [("a", {"é": 4}, {"é": -0.25}), ("b", {"Yes": 3, "No": 1}, None)]  # in position order
    assert reader.fingerprint("other") is None
    runs_ = reader.probe_runs("m", "fingerprint", "fp1")  # complete, of this version, oldest first
    assert [(r.id, r.slot, r.kind) for r in runs_] == [(probes[0], T0, "scheduled"),
                                                      (probes[2], T0 + timedelta(days=2), "scheduled")]
    assert reader.answered_turns([probes[0]]) == [  # the errored sample left out
        (probes[0], "a", [{"user": "a", "text": "é", "top_logprobs": [["é", -0.5]], "verdicts": []}])]
    assert current(reader, "m") == current(store, "m")
    assert [r.probe for r in runs_] == [None, None]  # not measured yet
    judged = series(reader, "m")  # measured from the answers, and kept
    assert [p.run.id for p in judged] == [probes[0], probes[2]]
    assert judged[0].probe.per_input == {"a": 0.0}  # the answers of "a" are its reference; "b" had none
    kept = reader.probe_runs("m", "fingerprint", "fp1")
    assert [r.probe for r in kept] == [p.probe.stored() for p in judged]
    assert store.run(probes[0]).probe == judged[0].probe.stored()
    with store.begin() as conn:  # the answers are not read again: the kept measurement is the probe's
        conn.execute(samples.delete().where(samples.c.run_id == probes[0]))
    assert [(p.run.id, p.probe, p.judged) for p in series(store, "m")] == [(p.run.id, p.probe, p.judged) for p in judged]
    reader.close()
    store.close()


def test_a_kept_probe_keeps_its_inputs_order_and_goes_when_an_import_adds_answers(tmp_path, db_url):
    """A kept measurement reads back as a fresh one (PostgreSQL's JSONB orders an object's keys
    its own way: the inputs come back in the fingerprint's order), and `canary import`
    adding answers to a probe drops it, to be measured again from all the answers."""
    from canary.transfer import export_lines, import_jsonl
    source = Store(f"sqlite:///{tmp_path / 'source.db'}")
    with source.begin() as conn:
        fp = conn.execute(fingerprints.insert().values(
            model="m", version="fp1", origin="init", created_at=T0, temperature=0.0, logprobs=False, candidates=300,
            border=2, calls=40).returning(fingerprints.c.id)).scalar()
        conn.execute(fingerprint_inputs.insert(), [  # in position order; JSONB would put "a" first
            {"fingerprint_id": fp, "position": 0, "prompt": "longer", "reference": {"Yes": 2, "No": 2}},
            {"fingerprint_id": fp, "position": 1, "prompt": "a", "reference": {"Yes": 4}}])
    run_id = source.create_run(model="m", suite="fingerprint", suite_version="fp1", slot=T0, kind="scheduled",
                               planned=8, owner=None, now=T0)
    source.insert_samples([
        {"run_id": run_id, "case_id": prompt, "sample": i, "status": "passed", "request_id": f"r-{prompt}-{i}",
         "turns": [{"user": prompt, "text": "Yes" if i < 2 else "No", "verdicts": []}], "finished_at": T0}
        for prompt in ("longer", "a") for i in range(4)])
    source.finish_run(run_id, "complete", T0 + timedelta(hours=1))
    lines = list(export_lines(source))
    whole = series(source, "m")[0].probe
    assert whole.per_input == {"longer": 0.0, "a": 0.5}
    source.close()

    store = Store(db_url)
    import_jsonl(store, [line for line in lines if '"sample":0' in line or '"sample":1' in line
                         or '"record":"fingerprint"' in line])  # the first two answers of each input
    half = series(store, "m")[0].probe  # measured, and kept
    assert list(half.per_input) == ["longer", "a"] and half.per_input == {"longer": 0.5, "a": 0.0}
    [kept_run] = store.probe_runs("m", "fingerprint", "fp1")
    assert kept_run.probe == half.stored()
    reader = open_reader(db_url)
    assert series(reader, "m")[0].probe == half and list(series(reader, "m")[0].probe.per_input) == ["longer", "a"]
    reader.close()
    import_jsonl(store, lines)  # the other two answers of each input join the run
    [grown] = store.probe_runs("m", "fingerprint", "fp1")
    assert grown.probe is None and grown.passed == 8  # dropped with the answers it was measured from
    assert series(store, "m")[0].probe == whole
    store.close()


def test_a_read_only_database_is_judged_without_keeping(tmp_path, caplog):
    """Kept verdicts and probe measurements are a cache: a database that refuses the write
    is read, judged and shown all the same (and judged again next time)."""
    caplog.set_level(logging.INFO, logger="canary.reads")
    path = tmp_path / "c.db"
    store = Store(f"sqlite:///{path}")
    _fingerprint_with_probes(store)
    run_id = _run(store, 0)
    (tmp_path / "canary.yaml").write_text(f"database: sqlite:///{path}\nmodels: [{{name: m, provider: openai, model: x}}]\n")
    config = load_config(tmp_path / "canary.yaml")
    read_only = Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert [p.probe.distance for p in series(read_only, "m")] == [0.0, 0.0]
    [row] = reports.history(read_only, config, "m", "s")
    assert row["verdict"] == "no_verdict" and row["passed"] == 2
    assert [r.probe for r in store.probe_runs("m", "fingerprint", "fp1")] == [None, None]
    assert store.run(run_id).verdict is None
    assert "runs.probe worked out by a read not kept" in caplog.text
    assert "runs.verdict worked out by a read not kept" in caplog.text
    read_only.close()
    store.close()


def test_the_reader_serves_only_a_database_at_the_current_schema(tmp_path, db_url):
    new = tmp_path / "new.db"
    assert open_reader(f"sqlite:///{new}") is None and not new.exists()  # a new database is the Store's to make
    assert open_reader("sqlite:///:memory:") is None
    assert open_reader(f"sqlite:///{new}?mode=ro") is None  # options only the Store reads
    assert open_reader("mysql://u@h/db") is None
    assert open_reader(f"sqlite:///{tmp_path}/a#b.db") is None  # SQLAlchemy's file is a#b.db, a URL's is "a"
    store = Store(db_url)
    assert open_reader(db_url) is not None
    with store.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'older'")
    assert open_reader(db_url) is None  # behind: the Store migrates it first
    store.close()


def test_a_failing_database_is_a_storage_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Store(url).close()
    reader = open_reader(url)
    reader.conn.close()
    with pytest.raises(StorageError, match="c.db failed"):
        reader.latest_runs()
