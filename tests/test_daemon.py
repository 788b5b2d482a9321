"""The daemon: cron per model, catch-up, replicas, budgets, reload, delivery, HTTP, signals.

In-process tests drive APScheduler's own machinery deterministically: the job list comes
from `Daemon.make_scheduler()`, fire times from each job's trigger (`get_next_fire_time`),
and the job function is called with the injected clock set to that time; nothing sleeps
for a cron interval. Real-process tests run `canary daemon` (and `canary sim`) as
subprocesses, each killed in a finaliser; every wait has a deadline.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.engine import make_url

from suite_texts import CAPITAL_AND_SUM, suite
from canary import alerts, logs, reports
from canary.daemon import Daemon
from canary.service import Service
from canary.slots import latest_fire
from canary.runner import endpoint_factory
from canary.schema import alerts as alerts_table, outbox, outbox_alerts, runs, samples
from canary.sim import SimServer
from canary.store import Store
from db_faults import SqliteWriteLock, TcpProxy, pg_full, sqlite_full
from slack_stub import SlackStub

BASICS = suite("basics", 2, CAPITAL_AND_SUM) + """\
  - id: planet
    prompt: Which planet is called the red planet? One word.
    assert: [{type: icontains, value: mars}]
    reference: {text: Mars}
"""
MORE = """\
suite: more
repeat: 2
cases:
  - id: largest
    prompt: Which is the largest planet? One word.
    assert: [{type: icontains, value: jupiter}]
    reference: {text: Jupiter}
  - id: colour
    prompt: What colour is a clear daytime sky? One word.
    assert: [{type: icontains, value: blue}]
    reference: {text: Blue}
"""
SIM_KEY_ENV = "CANARY_TEST_SIM_KEY"
T0 = datetime(2026, 11, 2, 0, 0)  # a Monday, naive UTC


class Clock:
    """The injected clock: naive UTC, moved by the test."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def models_yaml(url: str | None = None, **extra) -> str:
    """Two models (one per wire format), pointed at a simulator when `url` is given."""
    a = f", base_url: '{url}'" if url else ""
    o = f", base_url: '{url}/v1'" if url else ""
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    return (f"  - {{name: claude, provider: anthropic, model: claude-x, api_key_env: {SIM_KEY_ENV}, "
            f"price: {{input: 5, output: 25}}, concurrency: 2{a}{more}}}\n"
            f"  - {{name: gpt, provider: openai, model: gpt-x, api_key_env: {SIM_KEY_ENV}, concurrency: 2{o}}}\n")


def write_config(root, db_url: str, *, models: str, top: str = "", daemon: str = "") -> None:
    text = f"database: {db_url}\n{top}models:{chr(10) + models if models else ' []' + chr(10)}detection: {{confirm: false}}\n"
    if daemon:
        text += "daemon:\n" + textwrap.indent(textwrap.dedent(daemon), "  ")
    (root / "canary.yaml").write_text(text)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "basics.yaml").write_text(BASICS)
    (tmp_path / "prompts" / "more.yaml").write_text(MORE)
    return tmp_path


@pytest.fixture
def sim(project):
    from canary.suites import load_suites
    suites, _ = load_suites(project / "prompts")
    with SimServer(suites) as server:
        yield server


def make_daemon(project, sim, clock, owner="replica-a", **kw) -> Daemon:
    return Daemon(project / "canary.yaml", clock=clock, owner=owner,
                  provider_factory=endpoint_factory(sim.url, "sim-key"), **kw)


def run_rows(store: Store, **where) -> list:
    q = select(runs).order_by(runs.c.slot, runs.c.model, runs.c.suite, runs.c.kind)
    for k, v in where.items():
        q = q.where(getattr(runs.c, k) == v)
    with store.begin() as conn:
        return conn.execute(q).all()


def sample_keys(store: Store, run_id: int) -> list[tuple[str, int]]:
    with store.begin() as conn:
        return sorted(conn.execute(select(samples.c.case_id, samples.c.sample).where(samples.c.run_id == run_id)).all())


# --- scheduling, with an injected clock -------------------------------------------------------

def test_cron_fires_for_each_model_at_its_own_time(project, db_url, sim):
    models = (f"  - {{name: claude, provider: anthropic, model: claude-x, api_key_env: {SIM_KEY_ENV}}}\n"
              f"  - {{name: gpt, provider: openai, model: gpt-x, api_key_env: {SIM_KEY_ENV}, schedule: '0 9 * * *'}}\n")
    write_config(project, db_url, top="schedule: '0 6 * * *'\ntimezone: Europe/Paris\n", models=models,
                 daemon="catch_up: 1h\njitter: 2m\n")
    clock = Clock(T0)
    d = make_daemon(project, sim, clock)

    async def scenario():
        scheduler = d.make_scheduler()  # configured, not started: APScheduler's jobs and triggers
        jobs = {j.id: j for j in scheduler.get_jobs()}
        assert set(jobs) == {"model:claude", "model:gpt", "tick", "deliver"}
        fires = {}
        for name in ("claude", "gpt"):
            job = jobs[f"model:{name}"]
            fire = job.trigger.get_next_fire_time(None, T0.replace(tzinfo=timezone.utc))
            fires[name] = fire.astimezone(timezone.utc).replace(tzinfo=None)
        # 06:00 and 09:00 Paris (UTC+1 in November), plus up to 2 min of jitter
        assert datetime(2026, 11, 2, 5, 0) <= fires["claude"] <= datetime(2026, 11, 2, 5, 2)
        assert datetime(2026, 11, 2, 8, 0) <= fires["gpt"] <= datetime(2026, 11, 2, 8, 2)
        for name in sorted(fires, key=fires.get):
            clock.now = fires[name]
            job = jobs[f"model:{name}"]
            await job.func(*job.args)  # what APScheduler calls at that time
            await d.wait_idle()
    asyncio.run(scenario())
    got = [(r.model, r.suite, r.slot, r.kind, r.status) for r in run_rows(d.store)]
    assert got == [("claude", "basics", datetime(2026, 11, 2, 5), "scheduled", "complete"),
                   ("claude", "more", datetime(2026, 11, 2, 5), "scheduled", "complete"),
                   ("gpt", "basics", datetime(2026, 11, 2, 8), "scheduled", "complete"),
                   ("gpt", "more", datetime(2026, 11, 2, 8), "scheduled", "complete")]
    assert len(sim.requests) == 2 * (6 + 4)
    d.close()


def test_latest_fire_finds_the_slot_before_now():
    from apscheduler.triggers.cron import CronTrigger
    daily = CronTrigger.from_crontab("0 6 * * *", timezone="UTC")
    now = datetime(2026, 11, 2, 9, 30)
    assert latest_fire(daily, now, now - timedelta(hours=24)) == datetime(2026, 11, 2, 6)
    assert latest_fire(daily, now, now - timedelta(hours=3)) is None
    assert latest_fire(daily, datetime(2026, 11, 2, 6), datetime(2026, 11, 1)) == datetime(2026, 11, 2, 6)
    minutely = CronTrigger.from_crontab("* * * * *", timezone="UTC")
    assert latest_fire(minutely, datetime(2026, 11, 2, 9, 30, 59), datetime(2026, 11, 1)) == datetime(2026, 11, 2, 9, 30)


def test_a_missed_slot_is_caught_up_once(project, db_url, sim):
    write_config(project, db_url, top="schedule: '0 6 * * *'\n", models=models_yaml(), daemon="catch_up: 4h\n")
    clock = Clock(datetime(2026, 11, 2, 9, 0))  # down at 06:00, started at 09:00
    d = make_daemon(project, sim, clock)
    assert d.due_slots() == [("claude", datetime(2026, 11, 2, 6)), ("gpt", datetime(2026, 11, 2, 6))]
    assert d.due_slots(datetime(2026, 11, 2, 10, 30)) == []  # 4.5 h late: beyond catch_up

    async def scenario():
        d.catch_up()
        await d.wait_idle()
        first = len(sim.requests)
        clock.now += timedelta(minutes=5)  # a restart: the slot is complete, nothing runs again
        d.catch_up()
        await d.wait_idle()
        return first
    first = asyncio.run(scenario())
    assert first == 20 and len(sim.requests) == 20
    assert {(r.model, r.slot, r.status) for r in run_rows(d.store)} == {
        ("claude", datetime(2026, 11, 2, 6), "complete"), ("gpt", datetime(2026, 11, 2, 6), "complete")}
    d.close()


def test_a_slot_held_by_one_replica_is_skipped_by_another_then_taken_over_when_stale(project, db_url, sim):
    write_config(project, db_url, models=models_yaml(), daemon="lease: 60s\n")
    (project / "prompts" / "basics.yaml").write_text(BASICS.replace("repeat: 2", "repeat: 10"))
    clock = Clock(datetime(2026, 11, 2, 6, 0, 5))
    a = make_daemon(project, sim, clock, owner="replica-a")
    b = make_daemon(project, sim, clock, owner="replica-b")
    slot = datetime(2026, 11, 2, 6)
    sim.configure(latency=0.02)

    async def scenario():
        # A claims the slot and dies mid-run (its task is cancelled: the row stays `running`)
        task = a.launch("claude", slot)
        deadline = time.monotonic() + 20
        while True:
            rows = run_rows(a.store, model="claude", suite="basics")
            if rows and len(sample_keys(a.store, rows[0].id)) >= 4:
                break
            assert time.monotonic() < deadline, "replica A never stored 4 samples"
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        held = {r.suite: r for r in run_rows(a.store, model="claude")}
        missing = {name: r.planned - len(sample_keys(a.store, r.id)) for name, r in held.items()}
        asked = len(sim.requests)
        # B, within the lease: the slot is held by a live replica, so B skips it
        assert await b.run_slot("claude", slot) is None
        assert b.abandoned_runs() == [] and len(sim.requests) == asked
        # the lease passes without a heartbeat: B takes the run over, asking only the missing samples
        clock.now += timedelta(seconds=61)
        assert b.abandoned_runs() == [("claude", slot, "scheduled")]
        await b.run_slot("claude", slot)
        return held, missing, asked
    held, missing, asked = asyncio.run(scenario())
    basics = held["basics"]
    assert basics.status == "running" and basics.owner == "replica-a" and 0 < missing["basics"] <= 26
    assert len(sim.requests) - asked == sum(missing.values())  # only the missing samples were asked
    after = {r.suite: r for r in run_rows(b.store, model="claude")}
    assert {r.id for r in after.values()} == {r.id for r in held.values()}
    assert {r.status for r in after.values()} == {"complete"} and after["basics"].owner == "replica-b"
    assert sample_keys(b.store, basics.id) == sorted((c, i) for c in ("capital", "planet", "sum") for i in range(10))
    assert after["basics"].passed == 30 and after["more"].passed == 4
    a.close()
    b.close()


def test_budget_exhausted_shows_in_status_and_is_not_retried(project, db_url, sim):
    write_config(project, db_url, models=models_yaml(daily_token_budget=1).replace("concurrency: 2", "concurrency: 1", 1),
                 top="schedule: '0 6 * * *'\n")
    clock = Clock(datetime(2026, 11, 2, 6, 1))
    d = make_daemon(project, sim, clock)

    async def scenario():
        await d.run_slot("claude", datetime(2026, 11, 2, 6))
        clock.now += timedelta(hours=1)
        assert d.abandoned_runs() == []  # budget_exhausted is final, not an abandoned run
        d.catch_up()
        await d.wait_idle()
    asyncio.run(scenario())
    statuses = {r.suite: (r.status, r.passed) for r in run_rows(d.store, model="claude")}
    assert statuses["basics"][0] == "budget_exhausted" and statuses["more"][0] == "budget_exhausted"
    rows = {(r["model"], r["suite"]): r for r in reports.status(d.store, d.config, d.ws.suites, clock())}
    assert rows[("claude", "basics")]["last_status"] == "budget_exhausted"
    assert rows[("gpt", "basics")]["last_status"] == "complete"
    d.close()


def test_a_model_that_cannot_be_called_claims_nothing(project, db_url, monkeypatch):
    monkeypatch.delenv(SIM_KEY_ENV, raising=False)
    write_config(project, db_url, models=models_yaml("http://127.0.0.1:1"))
    d = Daemon(project / "canary.yaml", clock=Clock(datetime(2026, 11, 2, 6, 1)), owner="replica-a")
    assert asyncio.run(d.run_slot("gpt", datetime(2026, 11, 2, 6))) is None
    assert run_rows(d.store) == []  # the slot stays free for a replica (or a later start) that can run it
    [failure] = d.retries.slots.values()
    assert f"${SIM_KEY_ENV} is not set" in failure.why and d.healthz()[1]["failing"]  # /healthz says so
    d.close()


# --- reload and delivery ------------------------------------------------------------------------

def _touch(path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_a_bad_config_raises_one_alert_and_the_last_good_one_keeps_running(project, db_url, sim):
    write_config(project, db_url, models=models_yaml())
    clock = Clock(T0)
    d = make_daemon(project, sim, clock)
    d.scheduler = d.make_scheduler()
    good = (project / "canary.yaml").read_text()
    (project / "canary.yaml").write_text(good.replace("provider: openai", "provider: nope"))
    _touch(project / "canary.yaml")
    assert d.check_reload() is None  # changed: wait one poll for the file to settle
    assert d.check_reload() is False
    for _ in range(3):  # later polls and a SIGHUP: no second alert
        assert d.check_reload() is None
    assert d.reload("SIGHUP") is False
    assert [m.name for m in d.config.models] == ["claude", "gpt"] and d.config_ok is False

    def config_alerts():
        with d.store.begin() as conn:
            return conn.execute(select(alerts_table.c.id, alerts_table.c.state)
                                .where(alerts_table.c.kind == "config_error")).all()
    assert [a.state for a in config_alerts()] == ["open"]
    extra = f"  - {{name: extra, provider: openai, model: gpt-y, api_key_env: {SIM_KEY_ENV}}}\n"
    fixed = good.replace("detection:", extra + "detection:")
    (project / "canary.yaml").write_text(fixed)
    _touch(project / "canary.yaml")
    d.check_reload()
    assert d.check_reload() is True
    assert [m.name for m in d.config.models] == ["claude", "gpt", "extra"] and d.config_ok
    assert "model:extra" in {j.id for j in d.scheduler.get_jobs()}
    [alert] = config_alerts()
    assert alert.state == "closed"
    with d.store.begin() as conn:
        events = conn.execute(select(outbox.c.event).join(outbox_alerts, outbox_alerts.c.outbox_id == outbox.c.id)
                              .where(outbox_alerts.c.alert_id == alert.id).order_by(outbox.c.id)).scalars().all()
    assert events == ["opened", "recovered"]
    # a bad suite file: the config applies, the suite it held keeps its last good version, one alert
    (project / "prompts" / "more.yaml").write_text("suite: more\ncases: [{id: x}]\n")
    assert d.reload("SIGHUP") is True
    assert set(d.ws.suites) == {"basics", "more"} and len(d.ws.suites["more"].cases) == 2
    assert [a.state for a in config_alerts()] == ["closed", "open"]
    d.close()


def test_suite_warnings_are_logged_at_start_and_at_each_reload(project, db_url, sim, caplog):
    """What `canary validate` warns about reaches the daemon's log: a turn without a reference
    runs, but nothing shows it can be passed."""
    write_config(project, db_url, models=models_yaml())
    (project / "prompts" / "noref.yaml").write_text(
        "suite: noref\ncases:\n  - id: open\n    prompt: Say hi.\n    assert: [{type: icontains, value: hi}]\n")
    caplog.set_level(logging.WARNING, logger="canary")

    def warned():
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("suites: ")]
    d = make_daemon(project, sim, Clock(T0))
    [line] = warned()
    assert "noref.yaml:" in line and "no reference" in line
    assert d.reload("SIGHUP") is True and len(warned()) == 2 and d.ws.warnings == [line.removeprefix("suites: ")]
    d.close()


def test_the_outbox_is_delivered_periodically_so_a_slack_outage_is_retried(project, db_url, sim, monkeypatch):
    with SlackStub(script=[503]) as slack:
        monkeypatch.setenv("CANARY_TEST_WEBHOOK", slack.url + "/services/T/B/X")
        write_config(project, db_url, models=models_yaml(),
                     top="alerts: {slack: {webhook_url_env: CANARY_TEST_WEBHOOK}}\n")
        clock = Clock(T0)
        d = make_daemon(project, sim, clock)
        alerts.open_alert(d.store, model="gpt", suite="basics", kind="availability", run_id=None,
                          details={"reason": "test"}, message={"text": "canary: test alert"}, now=clock())

        async def scenario():
            await d.deliver()  # Slack answers 503: the message waits
            assert slack.refused == [503] and slack.accepted == []
            clock.now += timedelta(seconds=30)  # the next delivery job, after the backoff
            await d.deliver()
        asyncio.run(scenario())
        assert [m["body"]["text"] for m in slack.accepted] == ["canary: test alert"]
        d.close()


# --- HTTP -----------------------------------------------------------------------------------

def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metrics(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_healthz_and_metrics(project, db_url, sim):
    write_config(project, db_url, models=models_yaml(), top="schedule: '0 6 1 1 *'\n",
                 daemon="http: 127.0.0.1:0\ncatch_up: 1m\n")
    clock = Clock(datetime(2026, 11, 2, 6, 0, 5))
    d = make_daemon(project, sim, clock)
    alerts.open_alert(d.store, model="gpt", suite="more", kind="quality", run_id=None,
                      details={"reason": "test"}, message={"text": "t"}, now=clock())

    async def scenario():
        service = Service(d)
        server = asyncio.create_task(service.serve(signals=False))
        try:
            await d.run_slot("claude", datetime(2026, 11, 2, 6))
            deadline = time.monotonic() + 10
            while service.web is None or d.last_tick is None:
                assert time.monotonic() < deadline, "the daemon never ticked"
                await asyncio.sleep(0.02)
            base = service.web.url
            health = await asyncio.to_thread(_get, base + "/healthz")
            metrics = await asyncio.to_thread(_get, base + "/metrics")
            index = await asyncio.to_thread(_get, base + "/")
            live, d.store = d.store, Store("postgresql+psycopg://canary@127.0.0.1:1/none", upgrade=False)
            try:  # the database goes away
                down = await asyncio.to_thread(_get, base + "/healthz")
                down_metrics = await asyncio.to_thread(_get, base + "/metrics")
            finally:
                d.store = live
            return health, metrics, index, down, down_metrics
        finally:
            service.stop()
            await asyncio.wait_for(server, 20)
    health, metrics, index, down, down_metrics = asyncio.run(scenario())
    code, body = health
    body = json.loads(body)
    assert code == 200 and body["status"] == "ok" and body["db"] is True
    assert body["last_tick"].startswith("2026-11-02T06:00:05") and body["config_ok"] is True
    assert body["next_runs"] == {"claude": "2027-01-01T06:00:00Z", "gpt": "2027-01-01T06:00:00Z"}
    assert index[0] == 200 and 'href="/healthz"' in index[1] and 'href="/metrics"' in index[1]
    assert index[1].count('class="chart main') == 2 and "claude · basics" in index[1]  # the report, a chart per series
    assert metrics[0] == 200
    m = _metrics(metrics[1])
    assert m[("canary_runs_total", (("kind", "scheduled"), ("model", "claude"), ("status", "complete"), ("suite", "basics")))] == 1
    assert m[("canary_samples_total", (("model", "claude"), ("outcome", "passed"), ("suite", "basics")))] == 6
    assert m[("canary_pass_rate", (("model", "claude"), ("suite", "more")))] == 1.0
    assert m[("canary_request_latency_seconds_count", (("model", "claude"),))] == 10
    assert m[("canary_tokens_total", (("direction", "output"), ("model", "claude")))] > 0
    assert m[("canary_cost_usd_total", (("model", "claude"),))] > 0
    assert m[("canary_alert_open", (("kind", "quality"), ("model", "gpt"), ("suite", "more")))] == 1
    assert m[("canary_db_up", ())] == 1 and m[("canary_config_ok", ())] == 1
    code, body = down
    assert code == 503 and json.loads(body)["status"] == "db_unreachable" and json.loads(body)["db"] is False
    assert down_metrics[0] == 200 and _metrics(down_metrics[1])[("canary_db_up", ())] == 0
    d.close()


# --- logs -------------------------------------------------------------------------------------

@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("canary").level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("canary").setLevel(saved[2])


def test_logs_never_carry_a_secret(monkeypatch, restore_logging):
    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("CANARY_TEST_API_KEY", secret)
    for fmt in ("human", "json"):
        out = io.StringIO()
        logs.setup_logging(fmt, secret_envs=["CANARY_TEST_API_KEY"], stream=out)
        log = logging.getLogger("canary.test")
        log.info("calling with key %s", secret, extra={"model": "gpt"})
        try:
            raise RuntimeError(f"401: bad key {secret}")
        except RuntimeError:
            log.exception("call failed")
        text = out.getvalue()
        assert secret not in text and text.count("***") >= 2, text
        if fmt == "json":
            first, second = [json.loads(line) for line in text.strip().splitlines()][:2]
            assert first["msg"] == "calling with key ***" and first["model"] == "gpt" and first["level"] == "info"
            assert "RuntimeError" in second["exc"]
        else:
            assert "INFO    canary.test: calling with key ***" in text


# --- real processes -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs_ = "\n".join(f"--- {p.args}\n{p.log_path.read_text()[-3000:]}" for p in procs)
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs_}")
        time.sleep(0.05)


@pytest.fixture
def spawn(tmp_path):
    """Start a `canary` subprocess (output to a log file); every one is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(*args, env: dict | None = None) -> subprocess.Popen:
        log_path = tmp_path / f"proc{len(started)}.log"
        with open(log_path, "w") as out:
            p = subprocess.Popen([sys.executable, "-m", "canary.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                                 cwd=tmp_path, env={**os.environ, SIM_KEY_ENV: "dummy-sim-key", **(env or {})})
        p.log_path = log_path
        started.append(p)
        return p
    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


@pytest.fixture
def sim_process(project, spawn):
    """`canary sim` in a process of its own; returns its URL."""
    def start(latency: float) -> str:
        port = _free_port()
        write_config(project, "sqlite:///unused.db", models="")
        p = spawn("sim", "--config", str(project / "canary.yaml"), "--port", str(port), "--latency", str(latency))

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        _wait(up, 20, "the simulator", [p])
        return f"http://127.0.0.1:{port}"
    return start


def test_sigkill_mid_run_then_restart_finishes_the_run_with_every_sample_once(project, db_url, spawn, sim_process):
    url = sim_process(latency=0.05)
    (project / "prompts" / "basics.yaml").write_text(BASICS.replace("repeat: 2", "repeat: 20"))
    (project / "prompts" / "more.yaml").unlink()
    write_config(project, db_url, top="schedule: '* * * * *'\n",
                 models=f"  - {{name: gpt, provider: openai, model: gpt-x, base_url: '{url}/v1', "
                        f"api_key_env: {SIM_KEY_ENV}, concurrency: 2}}\n",
                 daemon="http: null\ncatch_up: 1h\nlease: 120s\n")
    store = Store(db_url)  # the schema, so the test can watch before the daemon starts
    first = spawn("daemon", "--once", "--config", str(project / "canary.yaml"))

    def started():
        rows = run_rows(store)
        return rows and len(sample_keys(store, rows[0].id)) >= 10 and rows[0]
    run = _wait(started, 30, "10 stored samples", [first])
    first.kill()  # SIGKILL, mid-run
    assert first.wait(10) == -signal.SIGKILL
    held = run_rows(store)[0]
    done = len(sample_keys(store, held.id))
    assert held.status == "running" and 10 <= done < 60
    # no wait for the lease (120 s): the owner is provably gone (its PID is dead on this host;
    # on SQLite, the new daemon also holds the single-daemon lock); a live owner would be skipped
    second = spawn("daemon", "--once", "--config", str(project / "canary.yaml"))
    assert second.wait(60) == 0, second.log_path.read_text()
    final = [r for r in run_rows(store) if r.id == run.id][0]
    assert final.status == "complete" and final.owner != held.owner and final.planned == 60
    assert sample_keys(store, run.id) == sorted((c, i) for c in ("capital", "planet", "sum") for i in range(20))
    assert final.passed == 60
    store.close()


def test_two_daemons_run_each_slot_exactly_once(project, db_url, spawn, sim):
    sim.configure(latency=0.01)
    write_config(project, db_url, top="schedule: '0 6 * * *'\n", models=models_yaml(sim.url),
                 daemon="http: null\ncatch_up: 6h\n")
    store = Store(db_url)
    config = str(project / "canary.yaml")
    if db_url.startswith("sqlite"):  # SQLite is for a single daemon: a second one is refused
        sim.configure(latency=0.5)  # the first daemon holds the lock while the second starts
        days, env = [2], {"CANARY_NOW": "2026-11-02T06:00:30"}
        first = spawn("daemon", "--once", "--config", config, env=env)
        lock = project / "canary.db.daemon.lock"
        _wait(lambda: lock.exists() and lock.read_text(), 30, "the first daemon's lock", [first])
        second = spawn("daemon", "--once", "--config", config, env=env)
        assert second.wait(60) == 2
        refused = second.log_path.read_text()
        assert "another canary daemon" in refused and "PostgreSQL" in refused
        assert first.wait(60) == 0
    else:
        days = [2, 3, 4]
        for day in days:  # both started at once on the same slots; each one's clock starts at CANARY_NOW
            env = {"CANARY_NOW": f"2026-11-0{day}T06:00:30"}
            pair = [spawn("daemon", "--once", "--config", config, env=env) for _ in range(2)]
            assert [p.wait(60) for p in pair] == [0, 0], [p.log_path.read_text() for p in pair]
    rows = run_rows(store)
    assert len(rows) == 4 * len(days) and {r.status for r in rows} == {"complete"}
    assert {r.slot for r in rows} == {datetime(2026, 11, d, 6) for d in days}
    for r in rows:
        assert len(sample_keys(store, r.id)) == r.planned == (6 if r.suite == "basics" else 4)
    assert len(sim.requests) == 20 * len(days)  # no sample was asked twice
    store.close()


def test_sigterm_exits_0_within_the_grace_and_marks_the_run_interrupted(project, db_url, spawn, sim_process):
    url = sim_process(latency=0.1)
    (project / "prompts" / "basics.yaml").write_text(BASICS.replace("repeat: 2", "repeat: 20"))
    (project / "prompts" / "more.yaml").unlink()
    write_config(project, db_url, top="schedule: '* * * * *'\n",
                 models=f"  - {{name: claude, provider: anthropic, model: claude-x, base_url: '{url}', "
                        f"api_key_env: {SIM_KEY_ENV}, concurrency: 2}}\n",
                 daemon="http: 127.0.0.1:0\ncatch_up: 1h\nshutdown_grace: 3s\n")
    store = Store(db_url)
    d = spawn("daemon", "--config", str(project / "canary.yaml"), "--log-format", "json")
    base = _wait(lambda: (m := re.search(r"HTTP on (http://127\.0\.0\.1:\d+)", d.log_path.read_text())) and m.group(1),
                 30, "the HTTP line", [d])
    run = _wait(lambda: (rows := run_rows(store)) and len(sample_keys(store, rows[0].id)) >= 4 and rows[0],
                30, "4 stored samples", [d])
    code, body = _get(base + "/healthz")
    health = json.loads(body)
    assert code == 200 and health["db"] is True and health["last_tick"] and health["running"]
    code, text = _get(base + "/metrics")
    assert code == 200
    passed = _metrics(text)[("canary_samples_total", (("model", "claude"), ("outcome", "passed"), ("suite", "basics")))]
    assert passed >= 1
    started = time.monotonic()
    d.send_signal(signal.SIGTERM)
    assert d.wait(10) == 0, d.log_path.read_text()
    assert time.monotonic() - started < 3 + 1.5  # the grace, plus the time to exit
    final = [r for r in run_rows(store) if r.id == run.id][0]
    assert final.status == "interrupted" and 4 <= len(sample_keys(store, run.id)) < 60
    lines = [json.loads(line) for line in d.log_path.read_text().splitlines() if line.startswith("{")]
    assert any(l["msg"].startswith("stopping") for l in lines) and lines[-1]["msg"] == "daemon stopped"
    assert "dummy-sim-key" not in d.log_path.read_text()
    store.close()


def test_a_run_finished_but_never_judged_is_judged_by_the_next_start(project, db_url, sim):
    """The process died after the run finished and before its signals were judged."""
    claude_only = models_yaml(sim.url).splitlines()[0] + "\n"
    write_config(project, db_url, models=claude_only, daemon="lease: 60s\ncatch_up: 4h\n")
    from canary.config import load_config
    from canary.runner import jobs_for, run_jobs
    from canary.suites import load_suites
    config = load_config(project / "canary.yaml")
    suites, _ = load_suites(project / "prompts")
    store = Store(config.database_url)
    factory = endpoint_factory(sim.url, "sim-key")
    (project / "prompts" / "basics.yaml").write_text(BASICS.replace("repeat: 2", "repeat: 6"))
    suites, _ = load_suites(project / "prompts")
    for day in range(8):  # seven healthy days, then a bad one whose judging never happened
        slot = datetime(2026, 11, 2 + day, 6)
        sim.configure(wrong_rate=0.0 if day < 7 else 0.7)
        jobs = [j for j in jobs_for(config, suites, slot=slot, kind="scheduled") if j.suite.name == "basics"]
        asyncio.run(run_jobs(store, jobs, clock=lambda s=slot: s, provider_factory=factory))
    store.close()
    [last] = run_rows(Store(config.database_url), slot=datetime(2026, 11, 9, 6), suite="basics")
    assert last.status == "complete" and last.assessed_at is None and last.passed < 12

    clock = Clock(datetime(2026, 11, 9, 6, 30))
    d = make_daemon(project, sim, clock)

    async def scenario():
        d.catch_up()
        await d.wait_idle()
    asyncio.run(scenario())
    [alert] = [a for a in d.store.open_alerts() if a.kind == "quality"]
    assert (alert.model, alert.suite, alert.opened_run_id) == ("claude", "basics", last.id)
    [judged] = run_rows(d.store, slot=datetime(2026, 11, 9, 6), suite="basics")
    assert judged.assessed_at == clock.now
    opened = reports.alert_list(d.store)
    asyncio.run(scenario())  # judged once: a second start opens nothing more
    assert reports.alert_list(d.store) == opened
    d.close()


def test_the_runs_of_a_slot_never_judged_are_judged_together_into_one_message(project, db_url, sim):
    """Both suites of a slot answered 529 and were never judged: the next start judges them
    in one go, so their two availability alerts make one message, as a live run would."""
    from canary.config import load_config
    from canary.runner import jobs_for, run_jobs
    from canary.suites import load_suites
    write_config(project, db_url, models=models_yaml(sim.url).splitlines()[0] + "\n", daemon="lease: 60s\n")
    config, (suites, _) = load_config(project / "canary.yaml"), load_suites(project / "prompts")
    store = Store(config.database_url)
    slot = datetime(2026, 11, 2, 6)
    sim.configure(error_rate=1.0)
    asyncio.run(run_jobs(store, jobs_for(config, suites, slot=slot, kind="scheduled"), clock=lambda: slot,
                         provider_factory=endpoint_factory(sim.url, "sim-key")))
    store.close()
    d = make_daemon(project, sim, Clock(slot + timedelta(minutes=30)))

    async def scenario():
        d.catch_up()
        await d.wait_idle()
    asyncio.run(scenario())
    listed = reports.alert_list(d.store)
    assert sorted((a["suite"], a["kind"]) for a in listed) == [("basics", "availability"), ("more", "availability")]
    assert [m["text"] for a in listed for m in a["messages"]] == ["canary: claude: basics: API errors; more: API errors"] * 2
    d.close()


# --- faults: the database, the HTTP port, killed processes (issue 9, items 8-13) -----------------

class Outage:
    """The database failing under the daemon, for real: SQLite locked by another writer (the
    daemon's busy timeout cut to 0.2 s), or PostgreSQL behind a proxy that is cut (a restart)."""

    def __init__(self, db_url: str):
        self.sqlite = db_url.startswith("sqlite")
        if self.sqlite:
            self.url = db_url + "?timeout=0.2"
            self.lock = SqliteWriteLock(make_url(db_url).database)
        else:
            self.proxy = TcpProxy.in_front_of(db_url)
            self.url = self.proxy.url(db_url)

    def start(self) -> None:
        self.lock.hold() if self.sqlite else self.proxy.cut()

    def end(self) -> None:
        self.lock.release() if self.sqlite else self.proxy.restore()

    def close(self) -> None:
        self.lock.release() if self.sqlite else self.proxy.close()


@pytest.fixture
def outage(db_url):
    o = Outage(db_url)
    yield o
    o.close()


class PingServer:
    """A heartbeat receiver (healthchecks.io style) on 127.0.0.1: counts the GETs it gets."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        pings = self.pings = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                pings.append(self.path)
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/3f1c-secret"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def _tick(d: Daemon, clock: Clock, seconds: float) -> None:
    """Move the injected clock, run one tick and whatever it launched."""
    clock.now += timedelta(seconds=seconds)
    await d.tick()
    await d.wait_idle()


def test_a_slot_whose_claim_fails_stays_due_and_is_retried_with_backoff(project, db_url, sim, outage):
    write_config(project, outage.url, top="schedule: '0 6 * * *'\n", models=models_yaml(), daemon="catch_up: 6h\n")
    clock = Clock(datetime(2026, 11, 2, 6, 0, 5))
    d = make_daemon(project, sim, clock)
    key = ("claude", datetime(2026, 11, 2, 6), "scheduled")

    async def scenario():
        outage.start()  # SQLite locked by another writer, or PostgreSQL restarting, at slot time
        await d.on_cron("claude")
        await d.wait_idle()
        failure = d.retries.slots[key]
        assert failure.attempts == 1 and failure.storage and failure.next_at == clock.now + timedelta(seconds=30)
        code, body = d.healthz()
        assert (code, body["status"]) == ((200, "degraded") if outage.sqlite else (503, "db_unreachable"))
        assert any(r.startswith("slot failing: claude 2026-11-02T06:00:00") for r in body["reasons"])
        await _tick(d, clock, 20)  # within the backoff: no new attempt
        assert d.retries.slots[key].attempts == 1 and sim.requests == deque()
        await _tick(d, clock, 15)  # the backoff has passed: tried again, fails again, waits twice as long
        assert d.retries.slots[key].attempts == 2
        assert d.retries.slots[key].next_at == clock.now + timedelta(seconds=60)
        outage.end()  # the lock is released / PostgreSQL is back
        await _tick(d, clock, 30)
        assert d.retries.slots[key].attempts == 2  # still waiting for its next try
        await _tick(d, clock, 31)
    asyncio.run(scenario())
    assert d.retries.slots == {}
    rows = run_rows(d.store, model="claude")
    assert [(r.slot, r.status) for r in rows] == [(key[1], "complete")] * 2
    assert sorted(len(sample_keys(d.store, r.id)) for r in rows) == [4, 6] and len(sim.requests) == 10
    code, body = d.healthz()
    assert code == 200 and body["status"] == "ok" and body["reasons"] == []
    m = _metrics(d.metrics.render().decode())
    assert m[("canary_slot_failures_total", (("model", "claude"),))] == 2
    assert m[("canary_last_success_timestamp_seconds", (("model", "claude"),))] == \
        clock.now.replace(tzinfo=timezone.utc).timestamp()
    d.close()


def test_a_slot_failing_until_catch_up_ends_is_given_up_and_alerted_and_the_heartbeat_stops(
        project, db_url, sim, monkeypatch, caplog):
    monkeypatch.delenv(SIM_KEY_ENV, raising=False)  # the slot cannot run: canary itself fails, not the API
    ping = PingServer()
    write_config(project, db_url, top="schedule: '0 6 * * *'\n", models=models_yaml(sim.url).splitlines()[0] + "\n",
                 daemon=f"catch_up: 10m\nfailing_alert_after: 5m\nheartbeat_url: '{ping.url}'\n")
    clock = Clock(datetime(2026, 11, 2, 6, 0, 5))
    d = Daemon(project / "canary.yaml", clock=clock, owner="replica-a")  # the real provider factory
    caplog.set_level(logging.INFO, logger="canary")

    async def scenario():
        await d.on_cron("claude")
        await d.wait_idle()
        pings = []
        while clock.now < datetime(2026, 11, 2, 6, 10, 10):  # a tick every 20 s until catch_up has passed
            await _tick(d, clock, 20)
            pings.append((clock.now, len(ping.pings)))
        return pings
    pings = asyncio.run(scenario())
    assert d.retries.slots == {} and "claude" in d.retries.failing_since  # given up, the model still failing
    texts = [r.getMessage() for r in caplog.records]
    assert sum(t.startswith("slot failed: claude") for t in texts) == 1  # the same reason is logged once
    [gave_up] = [r for r in caplog.records if r.getMessage().startswith("slot given up")]
    assert gave_up.levelname == "ERROR" and "CANARY_TEST_SIM_KEY is not set" in gave_up.getMessage()
    listed = {a["kind"]: a for a in reports.alert_list(d.store)}
    assert listed["slot_missed"]["state"] == "closed" and listed["slot_missed"]["closed_by"] == "given_up"
    assert "2026-11-02T06:00:00" in listed["slot_missed"]["summary"]
    assert listed["canary_failing"]["state"] == "open" and listed["canary_failing"]["model"] == "claude"
    assert d.healthz()[1]["status"] == "degraded"
    m = _metrics(d.metrics.render().decode())
    assert m[("canary_slots_total", (("model", "claude"), ("outcome", "given_up")))] == 1
    assert 5 <= m[("canary_slot_failures_total", (("model", "claude"),))] <= 7  # 30 s doubling over 10 min
    # the heartbeat: once a minute while canary works, none once a model has failed for failing_alert_after
    before = [n for t, n in pings if t < datetime(2026, 11, 2, 6, 5, 5)]
    after = {n for t, n in pings if t >= datetime(2026, 11, 2, 6, 5, 5)}
    assert 4 <= before[-1] <= 5 and after == {before[-1]} and set(ping.pings) == {"/ping/3f1c-secret"}
    assert "3f1c-secret" not in caplog.text

    monkeypatch.setenv(SIM_KEY_ENV, "sim-key")  # fixed: the next day's slot runs

    async def next_day():
        clock.now = datetime(2026, 11, 3, 6, 0, 5)
        await d.on_cron("claude")
        await d.wait_idle()
        await _tick(d, clock, 60)
        await d.deliver()
    asyncio.run(next_day())
    assert d.retries.failing_since == {} and d.healthz()[1]["status"] == "ok"
    [failing] = [a for a in reports.alert_list(d.store) if a["kind"] == "canary_failing"]
    assert failing["closed_by"] == "recovered" and [m["event"] for m in failing["messages"]] == ["opened", "recovered"]
    assert len(ping.pings) == before[-1] + 1  # beating again
    ping.close()
    d.close()


def test_a_run_whose_database_fills_up_is_marked_interrupted_then_resumed(project, db_url, sim, monkeypatch):
    monkeypatch.setattr("canary.writer.LINGER", 0.02)  # commits small enough that some land before the disk fills
    (project / "prompts" / "basics.yaml").write_text(BASICS.replace("repeat: 2", "repeat: 20"))
    (project / "prompts" / "more.yaml").unlink()
    write_config(project, db_url, top="schedule: '0 6 * * *'\n", models=models_yaml().splitlines()[0] + "\n")
    clock = Clock(datetime(2026, 11, 2, 6, 0, 5))
    d = make_daemon(project, sim, clock)
    sim.configure(latency=0.01)
    slot = datetime(2026, 11, 2, 6)
    full = (sqlite_full(d.store.engine.url.database, 2, d.store.engine) if db_url.startswith("sqlite")
            else pg_full(db_url, after=12))
    with full:  # SQLITE_FULL, or PostgreSQL's disk_full, after a few samples
        assert asyncio.run(d.run_slot("claude", slot)) is None
    [run] = run_rows(d.store)
    stored = len(sample_keys(d.store, run.id))
    assert run.status == "interrupted" and 0 < stored < 60  # not left `running`, its samples kept
    assert run.passed + run.failed + run.errors == stored  # and its counters say what it holds
    failure = d.retries.slots[("claude", slot, "scheduled")]
    assert failure.storage and ("disk is full" in failure.why or "No space left on device" in failure.why)
    asked = len(sim.requests)

    async def later():
        await _tick(d, clock, 31)
    asyncio.run(later())
    [run] = run_rows(d.store)
    assert run.status == "complete" and sample_keys(d.store, run.id) == sorted(
        (c, i) for c in ("capital", "planet", "sum") for i in range(20))
    assert len(sim.requests) - asked == 60 - stored  # only the missing samples were asked
    d.close()


def test_database_down_at_start_the_daemon_waits_with_healthz_503_then_runs(project, db_url, sim, tmp_path):
    from canary.web import WebServer
    if db_url.startswith("sqlite"):  # the volume is not mounted yet
        url, volume = f"sqlite:///{tmp_path / 'volume' / 'canary.db'}", tmp_path / "volume"
        restore, proxy = volume.mkdir, None
    else:  # PostgreSQL is not up yet
        proxy = TcpProxy.in_front_of(db_url)
        proxy.cut()
        url, restore = proxy.url(db_url), proxy.restore
    write_config(project, url, top="schedule: '0 6 * * *'\n", models=models_yaml(), daemon="catch_up: 6h\n")
    clock = Clock(datetime(2026, 11, 2, 6, 0, 5))
    d = make_daemon(project, sim, clock, lock=True)  # started anyway (it used to exit 2)
    web = WebServer("127.0.0.1", 0, d.metrics, d.healthz).start()
    try:
        code, body = _get(web.url + "/healthz")
        body = json.loads(body)
        assert code == 503 and body["status"] == "db_unreachable" and body["db"] is False
        assert body["reasons"][0].startswith("database unreachable: cannot ")

        async def scenario():
            await _tick(d, clock, 0.5)  # before the first backoff (1 s): no attempt
            assert d._db_attempts == 1
            await _tick(d, clock, 1)  # tried, fails: 2 s now
            assert d._db_attempts == 2 and not d.connected
            restore()
            await _tick(d, clock, 1)
            assert not d.connected  # still within the backoff
            await _tick(d, clock, 1.5)  # connected, migrated, and the catch-up rule runs the 06:00 slot
        asyncio.run(scenario())
        assert d.connected
        rows = run_rows(d.store)
        assert {(r.model, r.slot, r.status) for r in rows} == {
            ("claude", datetime(2026, 11, 2, 6), "complete"), ("gpt", datetime(2026, 11, 2, 6), "complete")}
        code, body = _get(web.url + "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
    finally:
        web.stop()
        if proxy:
            proxy.close()
    d.close()


def test_a_scheduled_slot_not_done_late_after_its_time_makes_healthz_degraded(project, db_url, sim):
    write_config(project, db_url, top="schedule: '0 6 * * *'\n", models=models_yaml(),
                 daemon="catch_up: 1h\nlate_after: 30m\n")
    clock = Clock(datetime(2026, 11, 2, 5, 0))
    d = make_daemon(project, sim, clock)
    assert d.healthz()[1]["status"] == "ok"  # the 05:00 daemon owes no slot yet
    clock.now = datetime(2026, 11, 2, 6, 31)  # the 06:00 slot never ran (the host slept, say)
    code, body = d.healthz()
    assert code == 200 and body["status"] == "degraded"
    assert sorted(r.split(":")[0] for r in body["reasons"]) == ["claude", "gpt"]
    assert "the slot of 2026-11-02T06:00:00 is not done 0:30:00 after its time" in body["reasons"][0]
    asyncio.run(d.run_slot("claude", datetime(2026, 11, 2, 6)))
    assert [r.split(":")[0] for r in d.healthz()[1]["reasons"]] == ["gpt"]
    d.close()


def test_a_run_held_by_a_gone_owner_is_taken_over_at_once_a_live_one_only_after_the_lease(project, db_url, sim):
    write_config(project, db_url, top="schedule: '0 6 * * *'\n", models=models_yaml(), daemon="lease: 120s\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host, slot = socket.gethostname(), datetime(2026, 11, 2, 6)
    clock = Clock(datetime(2026, 11, 2, 6, 0, 30))
    store = Store(db_url)
    owners = {"claude": f"{host}:{dead.pid}:0a1b2c3d",  # this host, its process dead: gone
              "gpt": f"elsewhere:{dead.pid}:0a1b2c3d"}  # another host: alive for all we know
    for model, owner in owners.items():
        run_id = store.create_run(model=model, suite="basics", suite_version="x", slot=slot, kind="scheduled",
                                  planned=6, owner=owner, now=clock())  # a heartbeat 0 s old
        store.insert_samples([{"run_id": run_id, "case_id": "capital", "sample": 0, "status": "passed", "error": None,
                               "error_status": None, "error_message": None, "request_id": None, "input_tokens": 1,
                               "output_tokens": 1, "latency_ms": 1.0, "finish_reason": "stop",
                               "reported_model": None, "cost": None, "turns": [], "finished_at": clock()}])
    d = make_daemon(project, sim, clock)
    assert d.abandoned_runs() == [("claude", slot, "scheduled")]
    asyncio.run(d.run_slot("claude", slot))
    [claude] = run_rows(store, model="claude", suite="basics")
    assert claude.status == "complete" and claude.owner == "replica-a"
    assert len(sim.requests) == 5 + 4  # basics: the 5 samples missing, 1 was kept; more: its 4
    asyncio.run(d.run_slot("gpt", slot))  # its `more` runs; its `basics`, held by a live replica, does not
    gpt = {r.suite: r for r in run_rows(store, model="gpt")}
    assert (gpt["basics"].status, gpt["basics"].owner) == ("running", owners["gpt"]) and len(sim.requests) == 9 + 4
    d.close()
    # a confirmation run may belong to a live `canary run`
    store.create_run(model="gpt", suite="more", suite_version="x", slot=slot, kind="confirm", planned=4,
                     owner="elsewhere:1:0e0e0e0e", now=clock())
    if db_url.startswith("sqlite"):  # the daemon holding the single-daemon lock: every other daemon is gone
        locked = make_daemon(project, sim, clock, owner="replica-b", lock=True)
        assert locked.abandoned_runs() == [("gpt", slot, "scheduled")]  # not the confirmation
        locked.close()
    clock.now += timedelta(seconds=121)  # the lease passes without a heartbeat: taken over anywhere
    later = make_daemon(project, sim, clock, owner="replica-c")
    assert later.abandoned_runs() == [("gpt", slot, "scheduled"), ("gpt", slot, "confirm")]
    later.close()
    store.close()


def test_a_manual_run_orphaned_by_a_kill_is_marked_interrupted_by_the_daemon(project, db_url, sim):
    write_config(project, db_url, models=models_yaml(), daemon="lease: 120s\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    clock = Clock(datetime(2026, 11, 2, 10, 0))
    d = make_daemon(project, sim, clock)
    run_id = d.store.create_run(model="gpt", suite="basics", suite_version="x", slot=clock(), kind="manual",
                                planned=6, owner=f"{socket.gethostname()}:{dead.pid}:5e5e5e5e", now=clock())
    d.store.insert_samples([{"run_id": run_id, "case_id": "capital", "sample": i, "status": "passed", "error": None,
                             "error_status": None, "error_message": None, "request_id": None, "input_tokens": 1,
                             "output_tokens": 1, "latency_ms": 1.0, "finish_reason": "stop", "reported_model": None,
                             "cost": None, "turns": [], "finished_at": clock()} for i in range(2)])
    asyncio.run(_tick(d, clock, 1))
    row = d.store.run(run_id)
    assert (row.status, row.passed, row.planned) == ("interrupted", 2, 6)  # visible, counted, not resumed
    assert len(sim.requests) == 0
    d.close()


def test_a_killed_canary_run_is_marked_interrupted_by_the_next_and_resumed_with_resume(project, db_url, spawn,
                                                                                       sim_process):
    from click.testing import CliRunner
    from canary.cli import main
    url = sim_process(latency=0.05)
    (project / "prompts" / "basics.yaml").write_text(BASICS.replace("repeat: 2", "repeat: 20"))
    (project / "prompts" / "more.yaml").unlink()
    write_config(project, db_url, models=f"  - {{name: gpt, provider: openai, model: gpt-x, base_url: '{url}/v1', "
                                         f"api_key_env: {SIM_KEY_ENV}, concurrency: 2}}\n")
    store = Store(db_url)
    config = str(project / "canary.yaml")
    first = spawn("run", "--config", config)
    run = _wait(lambda: (rows := run_rows(store)) and len(sample_keys(store, rows[0].id)) >= 6 and rows[0],
                30, "6 stored samples", [first])
    first.kill()
    first.wait(10)
    assert run_rows(store)[0].status == "running"  # what a kill leaves
    env = {SIM_KEY_ENV: "k"}
    again = CliRunner().invoke(main, ["run", "--config", config, "--resume", "--json"], env=env)
    assert again.exit_code == 0, again.output
    assert f"run {run.id} (gpt · basics" in again.stderr and "left running by a process that is gone" in again.stderr
    assert f"resuming run {run.id}" in again.stderr
    [final] = run_rows(store)
    assert final.id == run.id and final.status == "complete" and final.passed == 60
    assert sample_keys(store, run.id) == sorted((c, i) for c in ("capital", "planet", "sum") for i in range(20))
    store.close()


def test_database_failures_exit_5_in_one_line(project, db_url, spawn, sim):
    """A read-only database for `canary run`, an unreachable one for `daemon --once`."""
    from click.testing import CliRunner
    from canary.cli import main
    Store(db_url).close()  # the schema exists; the database then refuses writes
    if db_url.startswith("sqlite"):
        read_only = f"sqlite:///file:{make_url(db_url).database}?mode=ro&uri=true"
    else:
        u = make_url(db_url)
        read_only = u.update_query_dict({"options": u.query["options"] + " -c default_transaction_read_only=on"}
                                        ).render_as_string(hide_password=False)
    write_config(project, read_only, models=models_yaml(sim.url))
    result = CliRunner().invoke(main, ["run", "--config", str(project / "canary.yaml")], env={SIM_KEY_ENV: "k"})
    assert result.exit_code == 5, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("canary: the database failed") and "read" in line and "Traceback" not in result.output
    assert run_rows(Store(db_url)) == []  # nothing was left `running`
    down = _free_port()
    write_config(project, f"postgresql+psycopg://canary@127.0.0.1:{down}/none", models=models_yaml(sim.url))
    once = spawn("daemon", "--once", "--config", str(project / "canary.yaml"))
    assert once.wait(30) == 5
    out = once.log_path.read_text()
    assert "canary: cannot open the database" in out and "Traceback" not in out


def test_disk_full_during_canary_run_exits_5_and_marks_the_run_interrupted(project, db_url, sim, monkeypatch):
    from click.testing import CliRunner
    monkeypatch.setattr("canary.writer.LINGER", 0.02)  # commits small enough that some land before the disk fills
    from canary.cli import main
    (project / "prompts" / "basics.yaml").write_text(BASICS.replace("repeat: 2", "repeat: 20"))
    (project / "prompts" / "more.yaml").unlink()
    write_config(project, db_url, models=models_yaml(sim.url).splitlines()[0] + "\n")
    sim.configure(latency=0.01)
    store = Store(db_url)
    full = sqlite_full(store.engine.url.database, 2) if store.dialect == "sqlite" else pg_full(db_url, after=12)
    with full:  # SQLITE_FULL, or PostgreSQL's disk_full, after a few samples
        result = CliRunner().invoke(main, ["run", "--config", str(project / "canary.yaml")], env={SIM_KEY_ENV: "k"})
    assert result.exit_code == 5, result.output
    [line] = result.stderr.strip().splitlines()
    assert "disk is full" in line or "No space left on device" in line
    assert line.endswith("1 run(s) marked interrupted, their stored samples kept")
    [run] = run_rows(store)
    kept = len(sample_keys(store, run.id))
    assert run.status == "interrupted" and 0 < kept < 60 and run.passed == kept
    store.close()


def test_a_busy_http_port_is_one_line_and_exit_2(project, db_url, spawn):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        write_config(project, db_url, models=models_yaml(), daemon=f"http: 127.0.0.1:{port}\n")
        d = spawn("daemon", "--config", str(project / "canary.yaml"))
        assert d.wait(30) == 2
    out = d.log_path.read_text()
    assert f"canary: cannot serve HTTP on 127.0.0.1:{port} (daemon.http): Address already in use" in out
    assert "Traceback" not in out


def test_the_daemon_started_without_its_database_serves_503_then_runs_when_it_appears(project, spawn, sim, tmp_path):
    """The real process: a SQLite volume that is not mounted yet used to mean exit 2 and, under
    systemd's RestartPreventExitStatus=2, a daemon stopped for good."""
    volume = tmp_path / "volume"
    port = _free_port()
    write_config(project, f"sqlite:///{volume / 'canary.db'}", top="schedule: '* * * * *'\n",
                 models=models_yaml(sim.url), daemon=f"http: 127.0.0.1:{port}\ncatch_up: 1h\n")
    d = spawn("daemon", "--config", str(project / "canary.yaml"))
    base = f"http://127.0.0.1:{port}"
    code = _wait(lambda: _try_get(base + "/healthz"), 30, "/healthz", [d])[0]
    assert code == 503 and d.poll() is None
    volume.mkdir()
    watcher = Store(f"sqlite:///{volume / 'canary.db'}", upgrade=False)  # the daemon creates the schema

    def caught_up():
        try:
            return len(run_rows(watcher, status="complete")) >= 4
        except Exception:  # not migrated yet
            return False
    _wait(caught_up, 40, "the caught-up slot's runs", [d])
    watcher.close()
    assert _get(base + "/healthz")[0] == 200
    d.send_signal(signal.SIGTERM)
    assert d.wait(20) == 0
    assert "retrying (next in" in d.log_path.read_text()


def _try_get(url: str):
    try:
        return _get(url)
    except OSError:
        return None
