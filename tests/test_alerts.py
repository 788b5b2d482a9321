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
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from canary import alerts, monitor
from canary.cli import main
from canary.config import load_config
from canary.runner import endpoint_factory, jobs_for, run_jobs
from canary.sim import SimServer
from canary.store import Store
from canary.suites import load_suites
from canary.transfer import export_lines, write_jsonl
from slack_stub import SlackStub

SUITE = """\
suite: basics
repeat: 10
cases:
  - id: capital
    prompt: What is the capital of France? One word.
    assert: [{type: icontains, value: paris}]
    reference: {text: Paris}
  - id: sum
    prompt: "What is 12 + 30? End with ANSWER: <n>."
    answer: {regex: "ANSWER:\\\\s*(\\\\S+)"}
    assert: [{type: number, value: 42}]
    reference: {text: "12 + 30 = 42\\nANSWER: 42"}
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
    assert alerts.open_alerts(store) == []
    points = monitor.series(store, "gpt", "basics")
    assert len(points) == 1  # the baseline restarts at the acknowledged run
    store.close()
    # with no Slack configured the alert was logged, and says so
    [alert] = json.loads(cli(project, "alerts", "--json").stdout)["alerts"]
    assert alert["closed_by"] == "ack" and alert["messages"][0]["state"] == "logged"


def test_an_unset_slack_secret_keeps_messages_waiting_and_they_go_out_in_order(db_url):
    from canary.config import Alerts
    store = Store(db_url)
    t = datetime(2026, 11, 20, 6)
    cfg = Alerts.model_validate({"slack": {"webhook_url_env": "SLACK_HOOK"}})
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
