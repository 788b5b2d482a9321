"""End to end on loopback: imported history, a degraded simulated model, Slack on a stub.

One message when the series goes into breach (even after Slack refused the first tries),
none while it stays there, one recovery message when it is back; 529s raise an
availability alert, never a quality one.
"""
from __future__ import annotations

import asyncio
import io
import json
import textwrap
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from suite_texts import CAPITAL_AND_SUM, suite
from canary import alerts, reports, series
from canary.cli import main
from canary.config import load_config
from canary.runner import endpoint_factory, jobs_for, run_jobs
from canary.sim import SimServer
from canary.store import Store
from canary.suites import load_suites
from canary.transfer import export_lines, write_jsonl
from slack_stub import SlackStub

SUITE = suite("basics", 10, CAPITAL_AND_SUM) + """\
  - id: lower
    turns:
      - user: Answer in lowercase only. Which planet is red?
        assert: [{type: icontains, value: mars}, {type: not-regex, value: "[A-Z]"}]
        reference: {text: mars.}
      - user: And the largest one?
        assert: [{type: icontains, value: jupiter}, {type: not-regex, value: "[A-Z]"}]
        reference: {text: jupiter.}
"""


def config_text(db_url: str, slack: str, sim_url: str = "http://127.0.0.1:9") -> str:
    """One model on the OpenAI wire format, served by the test's simulated model (a real server)."""
    return textwrap.dedent(f"""\
        database: {db_url}
        models:
          - {{name: gpt, provider: openai, model: gpt-5.1, concurrency: 8, base_url: '{sim_url}/v1',
              api_key_env: SIM_API_KEY}}
        alerts:
          slack: {slack}
          error_rate: 0.2
        """)


@pytest.fixture(scope="module")
def history_jsonl(tmp_path_factory):
    """Ten healthy scheduled days, made by really running the simulator, exported as JSONL."""
    root = tmp_path_factory.mktemp("history")
    (root / "prompts").mkdir()
    (root / "prompts" / "basics.yaml").write_text(SUITE)
    (root / "canary.yaml").write_text(config_text(f"sqlite:///{root / 'h.db'}", "null"))
    config = load_config(root / "canary.yaml")
    suites, _ = load_suites(root / "prompts")
    store = Store(config.database_url)
    with SimServer(suites, wrong_rate=0.03, seed=11) as sim:
        for day in range(10):
            jobs = jobs_for(config, suites, slot=datetime(2026, 11, 1 + day, 6), kind="scheduled")
            asyncio.run(run_jobs(store, jobs, provider_factory=endpoint_factory(sim.url, "k")))
    out = io.StringIO()
    write_jsonl(export_lines(store), out)
    store.close()
    return out.getvalue()


@pytest.fixture
def project(tmp_path, db_url, history_jsonl):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "basics.yaml").write_text(SUITE)
    (tmp_path / "history.jsonl").write_text(history_jsonl)
    return tmp_path


@pytest.fixture
def sim(project):
    suites, _ = load_suites(project / "prompts")
    with SimServer(suites, seed=5) as server:
        yield server


def cli(project, *args, env=None):
    command = list(args[:1]) + ["--config", str(project / "canary.yaml")] + list(args[1:])
    return CliRunner().invoke(main, command, env={"SIM_API_KEY": "sim-key", **(env or {})}, catch_exceptions=False)


def degrade(sim, **knobs):
    sim.configure(**{"wrong_rate": 0.0, "error_rate": 0.0, **knobs})
    sim.reset()


@pytest.mark.parametrize("way", ["webhook", "web_api"])
def test_one_alert_despite_slack_refusals_then_one_recovery(project, db_url, sim, way):
    with SlackStub(script=[500, 429]) as slack:
        if way == "webhook":
            cfg, env = "{webhook_url_env: SLACK_WEBHOOK_URL}", {"SLACK_WEBHOOK_URL": slack.url + "/services/T/B/X"}
        else:
            cfg = f"{{token_env: SLACK_BOT_TOKEN, channel: '#llm', api_url: '{slack.url}/api/'}}"
            env = {"SLACK_BOT_TOKEN": "xoxb-secret-token"}
        (project / "canary.yaml").write_text(config_text(db_url, cfg, sim.url))
        assert cli(project, "import", str(project / "history.jsonl"), env=env).exit_code == 0

        degrade(sim, wrong_rate=0.5)
        degraded = cli(project, "run", "--json", env=env)
        assert degraded.exit_code == 1, degraded.output  # a regression alert opened
        report = json.loads(degraded.stdout)
        assert len(report["confirmations"]) == 1  # the breach was confirmed by a second run first
        assert [a["kind"] for a in report["alerts"]] == ["quality"]
        assert slack.accepted == [] and slack.refused == [500]  # Slack down: the message waits

        store = Store(load_config(project / "canary.yaml").database_url)
        notifier = alerts.notifier_from_config(load_config(project / "canary.yaml").alerts, env)
        now = datetime.utcnow()
        for minutes in (1, 5, 60, 120, 240):  # the daemon's sender, later: 429 once more, then accepted
            alerts.deliver(store, notifier, now=now + timedelta(minutes=minutes), owner="test")
        assert slack.refused == [500, 429] and len(slack.accepted) == 1
        message = slack.accepted[0]["body"]
        assert "gpt" in message["text"] and "basics" in message["text"]
        blocks = json.dumps(message["blocks"])
        assert "Pass rate" in blocks and "Failing cases" in blocks and "canary history --model gpt --suite basics" in blocks
        # the floor and k/n of the message are those `canary status` shows: both runs pooled, which it says
        [row] = json.loads(cli(project, "status", "--json", env=env).stdout)["series"]
        first, confirm = report["runs"][0], report["confirmations"][0]
        assert (row["passed"], row["answered"]) == (first["passed"] + confirm["passed"],
                                                    first["passed"] + first["failed"] + confirm["passed"] + confirm["failed"])
        assert (f"Pass rate {100 * row['pass_rate']:.1f}% ({row['passed']}/{row['answered']}), expected "
                f"{100 * row['mean']:.1f}%, band floor {100 * row['lower']:.1f}% (sigma)") in blocks
        assert (f"Pooled: this run {first['passed']}/{first['passed'] + first['failed']} and its confirmation run "
                f"{confirm['passed']}/{confirm['passed'] + confirm['failed']}, judged together") in blocks
        if way == "web_api":
            assert message["channel"] == "#llm" and slack.accepted[0]["auth"] == "Bearer xoxb-secret-token"

        degrade(sim, wrong_rate=0.5)
        still_bad = cli(project, "run", env=env)
        assert still_bad.exit_code == 0 and len(slack.accepted) == 1  # still in breach: no new message

        degrade(sim)
        healthy = cli(project, "run", "--json", env=env)
        assert healthy.exit_code == 0
        assert [(a["kind"], a["action"]) for a in json.loads(healthy.stdout)["alerts"]] == [("quality", "recovered")]
        assert len(slack.accepted) == 2 and "recovered" in slack.accepted[1]["body"]["text"]
        listing = cli(project, "alerts", "--json", env=env)
        [alert] = json.loads(listing.stdout)["alerts"]
        assert alert["state"] == "closed" and alert["closed_by"] == "recovered"
        assert [m["state"] for m in alert["messages"]] == ["sent", "sent"]
        assert "xoxb" not in listing.output and "services/T/B/X" not in listing.output
        store.close()


def test_overload_raises_availability_not_quality(project, db_url, sim):
    with SlackStub() as slack:
        env = {"SLACK_WEBHOOK_URL": slack.url + "/hook"}
        (project / "canary.yaml").write_text(config_text(db_url, "{webhook_url_env: SLACK_WEBHOOK_URL}", sim.url))
        assert cli(project, "import", str(project / "history.jsonl"), env=env).exit_code == 0
        degrade(sim, error_rate=0.34)
        result = cli(project, "run", "--json", env=env)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        [run] = report["runs"]
        assert run["errors"] == 10 and run["failed"] == 0  # one case of three answers 529 every time
        assert [a["kind"] for a in report["alerts"]] == ["availability"]
        assert report["confirmations"] == []
        [msg] = slack.accepted
        assert "API errors" in msg["body"]["text"] and "overloaded" in json.dumps(msg["body"]["blocks"])


def test_ack_closes_the_alert_and_restarts_the_baseline(project, db_url, sim):
    (project / "canary.yaml").write_text(config_text(db_url, "null", sim.url))
    assert cli(project, "import", str(project / "history.jsonl")).exit_code == 0
    degrade(sim, wrong_rate=0.5)
    assert cli(project, "run").exit_code == 1
    status = json.loads(cli(project, "status", "--json").stdout)["series"]
    assert status[0]["alerts"] == ["quality"]
    assert "1 alert(s) closed" in cli(project, "ack", "--model", "gpt", "--suite", "basics").output
    store = Store(load_config(project / "canary.yaml").database_url)
    assert store.open_alerts() == []
    points = series.points(store, "gpt", "basics")
    assert len(points) == 1  # the baseline restarts at the acknowledged run
    store.close()
    # with no Slack configured the alert was logged, and says so
    [alert] = json.loads(cli(project, "alerts", "--json").stdout)["alerts"]
    assert alert["closed_by"] == "ack" and alert["messages"][0]["state"] == "logged"


def test_an_unset_slack_secret_keeps_messages_waiting_and_they_go_out_in_order(db_url):
    from canary.config import Alerts
    store = Store(db_url)
    t = datetime(2026, 11, 20, 6)
    cfg = Alerts(slack={"webhook_url_env": "SLACK_HOOK"})
    unset = alerts.notifier_from_config(cfg, env={})
    alert_id = alerts.open_alert(store, model="m", suite="s", kind="quality", run_id=None, details={"reason": "r"},
                                 message={"text": "opened", "blocks": []}, now=t)
    assert alerts.deliver(store, unset, now=t, owner="a").failed == 1  # waits, is not "logged" away
    alerts.close_alert(store, alert_id, run_id=None, by="recovered", message={"text": "recovered"}, now=t)
    with SlackStub() as slack:
        notifier = alerts.notifier_from_config(cfg, env={"SLACK_HOOK": slack.url + "/hook"})
        # the recovery is due now, the opening only after its backoff: neither may jump the queue
        assert alerts.deliver(store, notifier, now=t + timedelta(seconds=1), owner="a").sent == 0
        assert alerts.deliver(store, notifier, now=t + timedelta(hours=2), owner="a").sent == 2
        assert [m["body"]["text"] for m in slack.accepted] == ["opened", "recovered"]
    store.close()


def _notifier(way: str, slack: SlackStub):
    from canary.config import Alerts
    if way == "webhook":
        cfg, env = {"webhook_url_env": "HOOK"}, {"HOOK": slack.url + "/services/T/B/X"}
    else:
        cfg, env = {"token_env": "TOKEN", "channel": "#llm", "api_url": slack.url + "/api/"}, {"TOKEN": "xoxb-t"}
    return alerts.notifier_from_config(Alerts(slack=cfg), env=env)


def _queue(store, n: int, now, first: int = 0) -> None:
    for i in range(first, first + n):
        alerts.open_alert(store, model=f"m{i}", suite="s", kind="quality", run_id=None, details={"reason": "r"},
                          message={"text": f"message {i}", "blocks": []}, now=now)


@pytest.mark.parametrize("way", ["webhook", "web_api"])
def test_a_refusal_for_good_marks_the_message_failed_logged_once_never_retried(db_url, way, caplog):
    from canary.health import undelivered
    from canary.web import Metrics
    from prometheus_client.parser import text_string_to_metric_families
    from slack_stub import Reply
    store = Store(db_url)
    t = datetime(2026, 11, 20, 6)
    _queue(store, 2, t)
    final = ([Reply(404, "no_service"), Reply(403, "action_prohibited")] if way == "webhook"  # webhook gone / revoked
             else [Reply(200, "channel_not_found"), Reply(403, "invalid_auth")])
    with SlackStub(script=final) as slack:
        notifier = _notifier(way, slack)
        report = alerts.deliver(store, notifier, now=t, owner="a")
        assert (report.sent, report.failed, report.dropped) == (0, 0, 2)
        for hours in (1, 2, 24):  # never retried
            assert alerts.deliver(store, notifier, now=t + timedelta(hours=hours), owner="a").dropped == 0
        assert len(slack.refused) == 2 and slack.accepted == []
        errors = [r for r in caplog.records if r.levelname == "ERROR" and "for good" in r.getMessage()]
        assert len(errors) == 2  # once per message
        listed = [m for a in reports.alert_list(store) for m in a["messages"]]
        assert {m["state"] for m in listed} == {"failed"} and all(m["next_attempt_at"] is None for m in listed)
        assert any(final[0].error in m["last_error"] for m in listed)
        [reason] = undelivered(store, t + timedelta(hours=24))  # /healthz: degraded
        assert reason.startswith("2 alert message(s) undeliverable, refused for good")
        families = text_string_to_metric_families(Metrics(lambda: store).render().decode())
        states = {s.labels["state"]: s.value for f in families for s in f.samples if f.name == "canary_alert_messages"}
        assert states["failed"] == 2
        _queue(store, 1, t + timedelta(days=1), first=2)  # Slack fixed: the next message goes out
        assert alerts.deliver(store, notifier, now=t + timedelta(days=1), owner="a").sent == 1
        assert undelivered(store, t + timedelta(days=1)) == []
    store.close()


def test_alerts_resend_sends_the_messages_refused_for_good_once_the_webhook_is_fixed(tmp_path, db_url):
    """A webhook gone (404) marks both messages failed; once it is fixed, `canary alerts
    --resend` sends them, in order, once: a second --resend and later passes send nothing."""
    from slack_stub import Reply
    store = Store(db_url)
    t = datetime(2026, 11, 20, 6)
    _queue(store, 2, t)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "basics.yaml").write_text(SUITE)
    (tmp_path / "canary.yaml").write_text(config_text(db_url, "{webhook_url_env: HOOK}"))
    with SlackStub(script=[Reply(404, "no_service"), Reply(404, "no_service")]) as gone:
        assert alerts.deliver(store, _notifier("webhook", gone), now=t, owner="a").dropped == 2
    with SlackStub() as fixed:
        env = {"HOOK": fixed.url + "/services/T/B/X"}
        first = cli(tmp_path, "alerts", "--resend", "--json", env=env)
        assert first.exit_code == 0, first.output
        assert "2 message(s) refused for good queued again: 2 sent" in first.stderr
        assert [m["body"]["text"] for m in fixed.accepted] == ["message 0", "message 1"]
        listed = [m for a in json.loads(first.stdout)["alerts"] for m in a["messages"]]
        assert {m["state"] for m in listed} == {"sent"} and {m["attempts"] for m in listed} == {2}
        again = cli(tmp_path, "alerts", "--resend", env=env)
        assert again.exit_code == 0 and "no message to send again" in again.stderr
        notifier = alerts.notifier_from_config(load_config(tmp_path / "canary.yaml").alerts, env=env)
        assert alerts.deliver(store, notifier, now=t + timedelta(days=2), owner="b").sent == 0
        assert len(fixed.accepted) == 2
    store.close()


def test_alerts_resend_never_tells_an_opening_after_its_recovery(tmp_path, db_url):
    """The opening was refused for good, the webhook fixed, the recovery sent: --resend leaves
    the opening failed (it would arrive after "back to normal") and sends what is not overtaken.
    Without Slack configured there is nowhere to send: the command says so, nothing changes."""
    from slack_stub import Reply
    store = Store(db_url)
    t = datetime(2026, 11, 20, 6)
    alert_id = alerts.open_alert(store, model="m", suite="s", kind="quality", run_id=None, details={"reason": "r"},
                                 message={"text": "opened", "blocks": []}, now=t)
    _queue(store, 1, t, first=5)  # another model's opening, refused too, never overtaken
    with SlackStub(script=[Reply(404, "no_service"), Reply(404, "no_service")]) as gone:
        assert alerts.deliver(store, _notifier("webhook", gone), now=t, owner="a").dropped == 2
    alerts.close_alert(store, alert_id, run_id=None, by="recovered", message={"text": "recovered"}, now=t)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "basics.yaml").write_text(SUITE)
    (tmp_path / "canary.yaml").write_text(config_text(db_url, "null"))
    refused = cli(tmp_path, "alerts", "--resend")
    assert refused.exit_code == 2 and "no alerts.slack" in refused.stderr
    (tmp_path / "canary.yaml").write_text(config_text(db_url, "{webhook_url_env: HOOK}"))
    with SlackStub() as fixed:
        env = {"HOOK": fixed.url + "/services/T/B/X"}
        notifier = alerts.notifier_from_config(load_config(tmp_path / "canary.yaml").alerts, env=env)
        assert alerts.deliver(store, notifier, now=t + timedelta(hours=1), owner="a").sent == 1  # the recovery
        resent = cli(tmp_path, "alerts", "--resend", env=env)
        assert resent.exit_code == 0, resent.output
        assert "1 message(s) refused for good left as they are" in resent.stderr
        assert [m["body"]["text"] for m in fixed.accepted] == ["recovered", "message 5"]
    states = {m["text"]: m["state"] for a in reports.alert_list(store) for m in a["messages"]}
    assert states == {"opened": "failed", "recovered": "sent", "message 5": "sent"}
    store.close()


@pytest.mark.parametrize("way", ["webhook", "web_api"])
def test_retry_after_as_an_http_date_or_inf_is_parsed_or_ignored_never_a_crash(db_url, way):
    from email.utils import format_datetime
    from slack_stub import Reply
    store = Store(db_url)
    t = datetime(2026, 11, 20, 6)
    _queue(store, 1, t)
    in_ten_minutes = format_datetime((t + timedelta(minutes=10)).replace(tzinfo=timezone.utc), usegmt=True)
    script = [Reply(429, "ratelimited", {"Retry-After": in_ten_minutes}),  # honoured
              Reply(503, "service_unavailable", {"Retry-After": "inf"}),  # unusable: the normal backoff (60 s)
              Reply(429, "ratelimited", {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}),  # gone: 120 s
              Reply(429, "ratelimited", {"Retry-After": "soon"})]  # garbage: 240 s
    with SlackStub(script=script) as slack:
        notifier = _notifier(way, slack)

        def attempt(at):
            report = alerts.deliver(store, notifier, now=at, owner="a")
            [m] = [m for a in reports.alert_list(store) for m in a["messages"]]
            return report, m
        report, m = attempt(t)
        assert report.failed == 1 and m["next_attempt_at"] == t + timedelta(minutes=10)
        assert attempt(t + timedelta(minutes=9))[0].failed == 0  # not before the date
        now = t + timedelta(minutes=10)
        for backoff in (60, 120, 240):
            report, m = attempt(now)
            assert report.failed == 1 and m["next_attempt_at"] == now + timedelta(seconds=backoff)
            now += timedelta(seconds=backoff)
        report, m = attempt(now)
        assert report.sent == 1 and m["state"] == "sent" and len(slack.refused) == 4
    store.close()


def test_retry_after_values():
    t = datetime(2026, 11, 20, 6)
    assert alerts.retry_after_seconds("30", t) == 30.0
    assert alerts.retry_after_seconds("Fri, 20 Nov 2026 06:00:45 GMT", t) == 45.0
    assert alerts.retry_after_seconds("99999999", t) == 3600.0  # clamped to the longest backoff
    for unusable in (None, "inf", "-inf", "nan", "-5", "", "Fri, 20 Nov 2026 05:00:00 GMT", "tomorrow"):
        assert alerts.retry_after_seconds(unusable, t) is None, unusable
