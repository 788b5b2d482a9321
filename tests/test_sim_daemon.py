"""`canary daemon --sim` (the daemon answered by the simulated model, storing in canary-sim.db)
and the simulator picking up new suite files, in the daemon and in `canary sim`."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime

from canary.sim import SimServer
from canary.service import Service
from canary.sim_daemon import SimDaemon, follow_suites
from canary.store import Store

SLOT = datetime(2026, 11, 2, 6)
BASICS = """\
suite: basics
cases:
  - id: capital
    prompt: What is the capital of France? One word.
    assert: [{type: icontains, value: paris}]
    reference: {text: Paris}
"""
LATER = """\
suite: later
cases:
  - id: planet
    prompt: Which planet is red? One word.
    assert: [{type: icontains, value: mars}]
    reference: {text: Mars}
"""


def write_project(root):
    (root / "prompts").mkdir()
    (root / "prompts" / "basics.yaml").write_text(BASICS)
    (root / "canary.yaml").write_text(textwrap.dedent("""\
        database: sqlite:///real.db
        schedule: "0 6 * * *"
        models:
          - {name: claude, provider: anthropic, model: claude-sim, repeat: 2}
        daemon: {http: null, catch_up: 24h}
        """))


def runs_in(path) -> list[tuple[str, str, int, int]]:
    store = Store(f"sqlite:///{path}")
    try:
        return [(r.model, r.suite, r.passed, r.errors) for r in store.latest_runs()]
    finally:
        store.close()


def test_the_sim_daemon_stores_apart_and_answers_a_suite_added_while_it_runs(tmp_path):
    write_project(tmp_path)
    with SimServer({}) as server:
        daemon = SimDaemon(tmp_path / "canary.yaml", server=server, clock=lambda: SLOT, owner="t", lock=True)
        try:
            assert daemon.store.url.endswith("canary-sim.db") and daemon._lock.path.name == "canary-sim.db.daemon.lock"
            watches = asyncio.run(Service(daemon).once())
            assert [(s.suite, s.passed, s.errors) for w in watches for s in w.summaries] == [("basics", 2, 0)]
            (tmp_path / "prompts" / "later.yaml").write_text(LATER)  # a new suite file
            assert daemon.reload("files changed") and set(server.suites) == {"basics", "later"}
            later = asyncio.run(daemon.run_slot("claude", SLOT))
            assert [(s.suite, s.passed) for s in later.summaries] == [("later", 2)]  # answered, not a generic reply
        finally:
            daemon.close()
    assert sorted(runs_in(tmp_path / "canary-sim.db")) == [("claude", "basics", 2, 0), ("claude", "later", 2, 0)]
    assert not (tmp_path / "real.db").exists()  # the real database is never touched


def test_canary_daemon_sim_once_from_the_command_line(tmp_path):
    write_project(tmp_path)
    env = {**os.environ, "CANARY_NOW": "2026-11-02T06:00:30"}
    env.pop("ANTHROPIC_API_KEY", None)  # no key needed
    proc = subprocess.run([sys.executable, "-m", "canary.cli", "daemon", "--sim", "--once", "--config",
                           str(tmp_path / "canary.yaml"), "--log-format", "json"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logged = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any("once: 1 slot(s) due" in r.get("msg", "") for r in logged), proc.stderr[-2000:]
    assert runs_in(tmp_path / "canary-sim.db") == [("claude", "basics", 2, 0)]
    assert not (tmp_path / "real.db").exists()


def test_the_standalone_simulator_picks_up_new_and_changed_suites(tmp_path):
    (tmp_path / "basics.yaml").write_text(BASICS)
    said: list[str] = []
    now = [0.0]
    follow = follow_suites(tmp_path, said.append, clock=lambda: now[0])
    ask = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "Which planet is red? One word."}]}
    with SimServer({}) as server:
        status, _h, body = server.handle("/v1/messages", {"x-api-key": "k"}, json.dumps(ask).encode())
        assert status == 200 and body["content"][0]["text"] != "Mars"  # not a known case yet: a generic reply
        (tmp_path / "later.yaml").write_text(LATER)
        (tmp_path / "broken.yaml").write_text("suite: [")
        now[0] = 0.5
        follow(server)  # looked at less than a second ago: nothing yet
        now[0] = 2.0
        follow(server)  # changed: noticed, and given a look more to settle (an editor's save)
        assert set(server.suites) == set()
        now[0] = 3.5
        follow(server)
        assert set(server.suites) == {"later", "basics"}
        assert any("broken.yaml" in line for line in said) and "suites reloaded" in said[-1]
        status, _h, body = server.handle("/v1/messages", {"x-api-key": "k"}, json.dumps(ask).encode())
        assert status == 200 and body["content"][0]["text"] == "Mars"
        (tmp_path / "later.yaml").unlink()
        (tmp_path / "broken.yaml").unlink()
        for now[0] in (5.0, 6.5):
            follow(server)
        assert set(server.suites) == {"basics"}  # a removed file: its suite is gone


def test_the_sim_daemon_sends_one_message_per_incident_with_sim_commands_links_and_request_ids(tmp_path, monkeypatch):
    """Six healthy days, a day of 529s on both suites, a healthy day: one message for the two
    suites' outage (HTTP statuses, request ids, links into the report at `/`, `--sim` in the
    commands), one for their recovery; /metrics shows the baseline and floor status shows."""
    from datetime import timedelta
    from prometheus_client.parser import text_string_to_metric_families
    from canary import reports
    from slack_stub import SlackStub
    write_project(tmp_path)
    (tmp_path / "prompts" / "later.yaml").write_text(LATER)
    (tmp_path / "canary.yaml").write_text(textwrap.dedent("""\
        database: sqlite:///real.db
        models:
          - {name: claude, provider: anthropic, model: claude-sim, repeat: 2, max_retries: 0}
        alerts: {slack: {webhook_url_env: CANARY_TEST_HOOK}, report_url: 'https://canary.example.com/'}
        daemon: {http: null}
        """))
    now = [SLOT]
    with SlackStub() as slack, SimServer({}) as server:
        monkeypatch.setenv("CANARY_TEST_HOOK", slack.url + "/services/T/B/X")
        daemon = SimDaemon(tmp_path / "canary.yaml", server=server, clock=lambda: now[0], owner="t")
        try:
            for day, error_rate in enumerate([0.0] * 6 + [1.0, 0.0]):
                now[0] = SLOT + timedelta(days=day)
                server.configure(error_rate=error_rate)
                watch = asyncio.run(daemon.run_slot("claude", now[0]))
                assert len(watch.summaries) == 2
                if day == 5:  # enough history for a band: /metrics draws what status shows
                    rows = reports.status(daemon.store, daemon.config, daemon.ws.suites, now[0])
                    families = text_string_to_metric_families(daemon.metrics.render().decode())
                    got = {(f.name, s.labels["suite"]): s.value for f in families for s in f.samples
                           if f.name in ("canary_baseline_mean", "canary_alert_floor")}
                    assert got == {**{("canary_baseline_mean", r["suite"]): r["mean"] for r in rows},
                                   **{("canary_alert_floor", r["suite"]): r["lower"] for r in rows}}
                    assert len(got) == 4
            page = daemon.report()
        finally:
            daemon.close()
    assert [m["body"]["text"] for m in slack.accepted] == [
        "canary: claude: basics: API errors; later: API errors", "canary: claude: recovered: basics: API errors; "
        "later: API errors"]
    opened = [b["text"]["text"] for b in slack.accepted[0]["body"]["blocks"][1:-1]]
    for suite, section in zip(("basics", "later"), opened):
        assert f'id="s-claude--{suite}"' in page  # the link's anchor is the report's section
        assert section.startswith(f"*<https://canary.example.com/#s-claude--{suite}|{suite}>* · *API errors*")
        assert "Errored samples: 2/2 (100.0%, threshold 20.0%)" in section
        assert "Error classes: overloaded: 2 · Statuses: HTTP 529: 2" in section
        [ids] = [line for line in section.splitlines() if line.startswith("Request ids to hand to the provider: `req_")]
        assert ids.count("`req_") == 2
    assert slack.accepted[0]["body"]["blocks"][-1]["elements"][0]["text"] == (
        "More: `canary status --sim` · <https://canary.example.com/|the report>")
