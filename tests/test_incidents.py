"""One message per incident, on SQLite and PostgreSQL, delivered to a Slack stub on loopback.

A provider-wide incident (2 models x 3 suites, each losing its pass rate and erroring) opens
12 alerts and sends 2 messages, one per model listing its suites; their recovery sends 2
more. The outbox keeps its guarantees with grouped messages: a recovery waits for every
opening it follows, two replicas never both send one, a Slack outage delays and never drops
or doubles, and rows queued before the upgrade still go out.
"""
from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from canary import alerts, monitor, reports
from canary.config import load_config
from canary.messages import Links
from canary.schema import outbox
from canary.store import Store
from canary.web import Metrics
from slack_stub import SlackStub

T0 = datetime(2026, 11, 1, 6)
MODELS, SUITES = ("claude", "gpt"), ("basics", "coding", "math")
REPORT = "https://canary.example.com/report?team=llm&v=2"


def config_for(tmp_path, db_url):
    models = "".join(f"  - {{name: {m}, provider: openai, model: x, suites: [{', '.join(SUITES)}]}}\n" for m in MODELS)
    (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
        database: {db_url}
        detection: {{confirm: false}}
        alerts: {{report_url: '{REPORT}#ignored'}}
        models:
        """) + models)
    return load_config(tmp_path / "canary.yaml")


def add_run(store, model, suite, slot, failed=0, errors=0):
    """Ten cases of three samples; the failures, then the errors (HTTP 529), fall on the last cases."""
    run_id = store.create_run(model=model, suite=suite, suite_version="v1", slot=slot, kind="scheduled",
                              planned=30, owner=None, now=slot)
    rows = []
    for i in range(30):
        status = "error" if i >= 30 - errors else "failed" if i >= 30 - errors - failed else "passed"
        rows.append({"run_id": run_id, "case_id": f"c{i // 3}", "sample": i % 3, "status": status,
                     "error": "overloaded" if status == "error" else None,
                     "error_status": 529 if status == "error" else None,
                     "request_id": f"req_{model}_{suite}_{slot:%d}_{i}", "input_tokens": 10,
                     "output_tokens": 0 if status == "error" else 50, "latency_ms": 100.0,
                     "reported_model": None if status == "error" else "x-1",
                     "turns": [{"user": "q", "text": "a", "verdicts": [
                         {"type": "icontains", "passed": status == "passed", "explanation": "contains \"x\": no"}]}],
                     "finished_at": slot})
    store.insert_samples(rows)
    store.finish_run(run_id, "complete", slot)
    return run_id


def judge_day(store, config, slot, **knobs):
    """One run of every series at `slot`, judged together as one `canary run` judges them."""
    runs = {(m, s): add_run(store, m, s, slot, **knobs) for m in MODELS for s in SUITES}
    assessments = [monitor.assess(store, config, m, s, run_id) for (m, s), run_id in runs.items()]
    return monitor.act(store, assessments, slot, Links(config.alerts.report_url))


def webhook(slack):
    return alerts.WebhookNotifier(slack.url + "/services/T/B/X")


def test_a_provider_wide_incident_is_one_message_per_model_and_its_recovery_one(tmp_path, db_url):
    config = config_for(tmp_path, db_url)
    store = Store(config.database_url)
    for d in range(8):
        assert judge_day(store, config, T0 + timedelta(days=d), failed=d % 2) == []
    bad = T0 + timedelta(days=8)
    events = judge_day(store, config, bad, failed=9, errors=9)  # 12 of 21 answered pass, 30% errored
    assert sorted((e.model, e.suite, e.kind) for e in events) == sorted(
        (m, s, k) for m in MODELS for s in SUITES for k in ("availability", "quality"))
    assert len(store.open_alerts()) == 12  # one alert per (model, suite, kind), as before
    with SlackStub() as slack:
        report = alerts.deliver(store, webhook(slack), now=bad, owner="a")
        assert report.sent == 2 and len(slack.accepted) == 2  # not 12
        for model, sent in zip(MODELS, slack.accepted):
            body = sent["body"]
            assert body["text"] == (f"canary: {model}: basics: pass rate dropped and API errors; coding: pass rate "
                                    "dropped and API errors; math: pass rate dropped and API errors")
            sections = [b["text"]["text"] for b in body["blocks"][1:-1]]
            assert len(sections) == 3
            for suite, section in zip(SUITES, sections):
                url = f"{REPORT.replace('&', '&amp;')}#s-{model}--{suite}"  # the report's anchor of the series
                assert section.startswith(f"*<{url}|{suite}>* · *pass rate dropped*, *API errors*")
                row = next(r for r in reports.status(store, config, {}, bad) if (r["model"], r["suite"]) == (model, suite))
                assert (row["passed"], row["answered"]) == (12, 21)
                assert f"Pass rate 57.1% (12/21), expected {100 * row['mean']:.1f}%, band floor " \
                       f"{100 * row['lower']:.1f}% (sigma)" in section  # the figures `canary status` shows
                assert "• `c4` (newly failing: 0/3 passed today" in section
                assert "Errored samples: 9/30 (30.0%, threshold 20.0%)" in section
                assert "Error classes: overloaded: 9 · Statuses: HTTP 529: 9" in section
                ids = ", ".join(f"`req_{model}_{suite}_09_{i}`" for i in (21, 22, 23))
                assert f"Request ids to hand to the provider: {ids}" in section
            assert body["blocks"][-1]["elements"][0]["text"] == (
                f"More: `canary failures --model {model}` · `canary status` · <{REPORT.replace('&', '&amp;')}|the report>")

        good = T0 + timedelta(days=9)
        recovered = judge_day(store, config, good)
        assert len(recovered) == 12 and {e.action for e in recovered} == {"recovered"}
        assert alerts.deliver(store, webhook(slack), now=good, owner="a").sent == 2
        texts = [s["body"]["text"] for s in slack.accepted[2:]]
        assert texts == [f"canary: {m}: recovered: basics: pass rate dropped and API errors; coding: pass rate dropped "
                         "and API errors; math: pass rate dropped and API errors" for m in MODELS]
    listed = reports.alert_list(store)
    assert len(listed) == 12 and all([m["event"] for m in a["messages"]] == ["opened", "recovered"] for a in listed)
    assert all(m["state"] == "sent" for a in listed for m in a["messages"])
    with store.begin() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 4
    store.close()


def test_metrics_show_the_baseline_and_floor_canary_status_shows(tmp_path, db_url):
    config = config_for(tmp_path, db_url)
    store = Store(config.database_url)
    for d in range(7):
        judge_day(store, config, T0 + timedelta(days=d), failed=d % 3)
    rows = {(r["model"], r["suite"]): r for r in reports.status(store, config, {}, T0 + timedelta(days=7))}
    text = Metrics(lambda: store, lambda: config, lambda: {}).render().decode()
    got = {(f.name, s.labels["model"], s.labels["suite"]): s.value for f in text_string_to_metric_families(text)
           for s in f.samples if f.name in ("canary_baseline_mean", "canary_alert_floor")}
    assert len(got) == 12
    for (model, suite), row in rows.items():
        assert row["mean"] is not None and row["lower"] < row["mean"]
        assert got["canary_baseline_mean", model, suite] == row["mean"]
        assert got["canary_alert_floor", model, suite] == row["lower"]
    store.close()


def _incident(store, model, suites, action, now, alert_ids=None):
    """Open (or close, `alert_ids`) quality alerts of `model` on `suites` as one message."""
    changes = [alerts.Change(model, s, "quality", action, None, {"reason": "r"}, (alert_ids or {}).get(s))
               for s in suites]
    made = alerts.record(store, changes, lambda a, group: {"text": f"{a} {model}: {','.join(c.suite for c in group)}"},
                         now=now)
    return {c.suite: c.alert_id for c in made}


def test_a_recovery_waits_for_every_opening_it_follows(db_url):
    store = Store(db_url)
    t = T0
    with SlackStub(script=[503]) as slack:
        ab = _incident(store, "m", ["a", "b"], "opened", t)
        assert alerts.deliver(store, webhook(slack), now=t, owner="x").failed == 1  # Slack down: waits 30 s
        c = _incident(store, "m", ["c"], "opened", t + timedelta(seconds=1))
        assert alerts.deliver(store, webhook(slack), now=t + timedelta(seconds=1), owner="x").sent == 1
        _incident(store, "m", ["a", "b", "c"], "recovered", t + timedelta(seconds=2), {**ab, **c})
        # the recovery carries a and b, whose opening is still pending: it waits, though c's went out
        assert alerts.deliver(store, webhook(slack), now=t + timedelta(seconds=2), owner="x").sent == 0
        assert alerts.deliver(store, webhook(slack), now=t + timedelta(seconds=31), owner="x").sent == 2
        assert [s["body"]["text"] for s in slack.accepted] == ["opened m: c", "opened m: a,b", "recovered m: a,b,c"]
    store.close()


class _Racing:
    """A replica that, while it sends, lets another replica deliver the same outbox."""

    def __init__(self, inner, other):
        self.inner, self.other, self.reports = inner, other, []

    def send(self, message):
        if not self.reports:
            self.reports.append(self.other())
        self.inner.send(message)


def test_two_replicas_never_both_send_a_message(db_url):
    store, replica = Store(db_url), Store(db_url, upgrade=False)
    for i in range(4):
        _incident(store, f"m{i}", ["a", "b", "c"], "opened", T0)
    with SlackStub() as slack:
        racing = _Racing(webhook(slack), lambda: alerts.deliver(replica, webhook(slack), now=T0, owner="b"))
        first = alerts.deliver(store, racing, now=T0, owner="a")
        second = racing.reports[0]  # b ran while a held message 1: b sent the three others, not that one
        assert (first.sent, second.sent) == (1, 3)
        assert alerts.deliver(replica, webhook(slack), now=T0 + timedelta(hours=1), owner="b").sent == 0
        texts = sorted(s["body"]["text"] for s in slack.accepted)
        assert texts == [f"opened m{i}: a,b,c" for i in range(4)]  # each once
    store.close()
    replica.close()


def test_a_slack_outage_delays_grouped_messages_and_loses_or_doubles_none(db_url):
    store = Store(db_url)
    _incident(store, "m", ["a", "b"], "opened", T0)
    down = alerts.WebhookNotifier("http://127.0.0.1:9/services/T/B/X")  # nothing listens: refused
    now = T0
    for _ in range(5):
        assert alerts.deliver(store, down, now=now, owner="a").failed == 1
        [m] = reports.alert_list(store)[0]["messages"]
        assert m["state"] == "pending" and "unreachable" in m["last_error"]
        now = m["next_attempt_at"]
    assert now - T0 == timedelta(seconds=30 + 60 + 120 + 240 + 480)  # backoff doubles
    with SlackStub() as slack:
        for minutes in (0, 1, 60):
            alerts.deliver(store, webhook(slack), now=now + timedelta(minutes=minutes), owner="a")
        assert [s["body"]["text"] for s in slack.accepted] == ["opened m: a,b"]
    assert [m["state"] for a in reports.alert_list(store) for m in a["messages"]] == ["sent", "sent"]
    store.close()


def test_a_replica_that_opened_an_alert_first_wins_and_no_second_message_is_queued(db_url):
    store = Store(db_url)
    first = _incident(store, "m", ["a"], "opened", T0)
    again = _incident(store, "m", ["a", "b"], "opened", T0 + timedelta(minutes=1))  # a is open: only b
    assert set(first) == {"a"} and set(again) == {"b"}
    with SlackStub() as slack:
        assert alerts.deliver(store, webhook(slack), now=T0 + timedelta(minutes=1), owner="x").sent == 2
        assert [s["body"]["text"] for s in slack.accepted] == ["opened m: a", "opened m: b"]
    assert _incident(store, "m", ["a"], "recovered", T0, first) == {"a": first["a"]}
    assert _incident(store, "m", ["a"], "recovered", T0, first) == {}  # closed already: nothing queued
    store.close()


def test_pending_messages_from_before_the_upgrade_still_go_out_in_order(db_url):
    """A database at 0007 (one outbox row per alert event) with an opening that Slack refused
    and its recovery behind it: after the upgrade both go out, in order, once."""
    from alembic import command
    from sqlalchemy import text
    from canary.store import alembic_config
    store = Store(db_url, upgrade=False)
    with store.engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(conn), "0007")
    def insert(conn, sql, **values):
        return conn.execute(text(sql + " RETURNING id"), {"t": T0, **values}).scalar()
    with store.begin() as conn:  # the rows as 0007 wrote them
        alert = "INSERT INTO alerts (model, suite, kind, state, opened_at, details) VALUES ('m', :s, 'quality', :st, :t, '{}')"
        s, u = insert(conn, alert, s="s", st="closed"), insert(conn, alert, s="u", st="open")
        row = ("INSERT INTO outbox (alert_id, event, message, state, created_at, attempts, next_attempt_at) "
               "VALUES (:a, :e, :m, :st, :t, :n, :t)")
        for alert_id, event, state, attempts in ((s, "opened", "pending", 3), (u, "opened", "sent", 1),
                                                 (s, "recovered", "pending", 0)):
            name = "s" if alert_id == s else "u"
            insert(conn, row, a=alert_id, e=event, m=json.dumps({"text": f"{event} {name}"}), st=state, n=attempts)
    store.upgrade()
    listed = {a["suite"]: [(m["event"], m["state"], m["attempts"]) for m in a["messages"]] for a in reports.alert_list(store)}
    assert listed == {"s": [("opened", "pending", 3), ("recovered", "pending", 0)], "u": [("opened", "sent", 1)]}
    with SlackStub() as slack:
        assert alerts.deliver(store, webhook(slack), now=T0, owner="x").sent == 2
        assert [s["body"]["text"] for s in slack.accepted] == ["opened s", "recovered s"]
        assert _incident(store, "m", ["v"], "opened", T0)  # and new ones are queued and sent after them
        assert alerts.deliver(store, webhook(slack), now=T0, owner="x").sent == 1
        assert [s["body"]["text"] for s in slack.accepted] == ["opened s", "recovered s", "opened m: v"]
    store.close()


def test_a_downgrade_gives_each_alert_event_its_row_back(db_url):
    from alembic import command
    from canary.store import alembic_config
    store = Store(db_url)
    _incident(store, "m", ["a", "b"], "opened", T0)
    with store.engine.connect() as conn, conn.begin():
        command.downgrade(alembic_config(conn), "0007")
    store.upgrade()  # and up again: a message per event now, each still pending
    assert [[m["text"] for m in a["messages"]] for a in reports.alert_list(store)] == [["opened m: a,b"]] * 2
    with SlackStub() as slack:
        assert alerts.deliver(store, webhook(slack), now=T0, owner="x").sent == 2
    store.close()
