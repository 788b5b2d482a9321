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
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from canary import alerts, logs, reports
from canary.daemon import Daemon
from canary.slots import latest_fire
from canary.runner import endpoint_factory
from canary.schema import alerts as alerts_table, outbox, runs, samples
from canary.sim import SimServer
from canary.store import Store
from slack_stub import SlackStub

BASICS = """\
suite: basics
repeat: 2
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
    [why] = d.failed.values()
    assert f"${SIM_KEY_ENV} is not set" in why and d.health()[1]["failing"]  # /healthz says so
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
        events = conn.execute(select(outbox.c.event).where(outbox.c.alert_id == alert.id).order_by(outbox.c.id)).scalars().all()
    assert events == ["opened", "recovered"]
    # a bad suite file: the config applies, the suite it held keeps its last good version, one alert
    (project / "prompts" / "more.yaml").write_text("suite: more\ncases: [{id: x}]\n")
    assert d.reload("SIGHUP") is True
    assert set(d.ws.suites) == {"basics", "more"} and len(d.ws.suites["more"].cases) == 2
    assert [a.state for a in config_alerts()] == ["closed", "open"]
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
        server = asyncio.create_task(d.serve(signals=False))
        try:
            await d.run_slot("claude", datetime(2026, 11, 2, 6))
            deadline = time.monotonic() + 10
            while d.web is None or d.last_tick is None:
                assert time.monotonic() < deadline, "the daemon never ticked"
                await asyncio.sleep(0.02)
            base = d.web.url
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
            d.stop()
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
                 daemon="http: null\ncatch_up: 1h\nlease: 1s\n")
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
    time.sleep(1.3)  # the lease (1 s) passes without a heartbeat
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
    [alert] = [a for a in alerts.open_alerts(d.store) if a.kind == "quality"]
    assert (alert.model, alert.suite, alert.opened_run_id) == ("claude", "basics", last.id)
    [judged] = run_rows(d.store, slot=datetime(2026, 11, 9, 6), suite="basics")
    assert judged.assessed_at == clock.now
    opened = alerts.list_alerts(d.store)
    asyncio.run(scenario())  # judged once: a second start opens nothing more
    assert alerts.list_alerts(d.store) == opened
    d.close()
