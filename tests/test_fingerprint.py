"""Fingerprints: init (phase 1), probes as runs, the model_changed episode, ack, the daemon's hook.

Against the simulator's fingerprint mode through the official SDKs, on SQLite and
PostgreSQL, with an injected clock (one probe a simulated day); Slack is the stub.
"""
from __future__ import annotations

import asyncio
import io
import json
import random
import statistics
import textwrap
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from canary import reports, sim_fingerprint
from canary.alerts import WebhookNotifier
from canary.cli import main
from canary.config import load_config
from canary.fingerprint import SUITE, phase1, rule
from canary.errors import StorageError
from canary.fingerprint.probe import accept, current, probe, series
from canary.runner import Control, endpoint_factory
from canary.schema import runs, samples
from canary.sim import SimServer
from canary.store import Store
from db_faults import SqliteWriteLock, TcpProxy, pg_full, sqlite_full
from slack_stub import SlackStub

T0 = datetime(2026, 11, 2, 6)
SMALL = "{inputs: 4, samples: 5, candidates: 300, reference: 20}"
SIM_KEY_ENV = "CANARY_TEST_SIM_KEY"


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write_config(tmp_path, db_url, *, provider="openai", fingerprint=SMALL, params="{}", slack="", max_retries=2,
                 base_url=None):
    """`base_url`: the model points at it (a simulator), its key in $CANARY_TEST_SIM_KEY, as the CLI needs."""
    (tmp_path / "prompts").mkdir(exist_ok=True)
    endpoint = f"    base_url: '{base_url}'\n    api_key_env: {SIM_KEY_ENV}\n" if base_url else ""
    (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
        database: {db_url}
        models:
          - name: m
            provider: {provider}
            model: sim-model
            params: {params}
            price: {{input: 5, output: 25}}
            concurrency: 4
            fingerprint: {fingerprint}
            max_retries: {max_retries}
        """) + endpoint + slack)
    return load_config(tmp_path / "canary.yaml")


@pytest.fixture
def sim():
    with SimServer({}, seed=3) as server:
        yield server


def initialise(store, config, sim, clock):
    return asyncio.run(phase1.init(store, config.model("m"), clock=clock,
                                   provider_factory=endpoint_factory(sim.url, "sim-key")))


def probe_day(store, config, sim, clock, notifier=None):
    result = asyncio.run(probe(store, config, config.model("m"), slot=clock(), kind="scheduled", clock=clock,
                               provider_factory=endpoint_factory(sim.url, "sim-key"), notifier=notifier))
    clock.now += timedelta(days=1)
    return result


# --- init and probes ------------------------------------------------------------------------------

def test_init_keeps_balanced_border_inputs_and_a_probe_is_a_run(tmp_path, db_url, sim):
    config = write_config(tmp_path, db_url)
    store, clock = Store(config.database_url), Clock(T0)
    result = initialise(store, config, sim, clock)
    found = result.found
    assert len(found.kept) == 4 and not result.too_few and found.temperature == 0 and found.with_logprobs
    assert len(found.border) == 12 and found.tried < 300  # stopped early: 3 x inputs candidates found
    fp = current(store, "m")
    assert fp.prompts == found.kept and fp.row.origin == "init" and fp.row.calls == found.calls
    for prompt in fp.prompts:
        assert sum(fp.references[prompt].values()) == 20 and len(fp.references[prompt]) > 1  # every one a border
        assert fp.logprobs[prompt] and all(v < 0 for v in fp.logprobs[prompt].values())
    # the requests: the model's params, one output token, temperature 0, first-token logprobs
    body = sim.requests[-1][1]
    assert (body["max_completion_tokens"], body["temperature"], body["logprobs"], body["top_logprobs"]) == (1, 0, True, 5)
    assert body["messages"] == [{"role": "user", "content": body["messages"][0]["content"]}]

    first = probe_day(store, config, sim, clock)
    assert first.summary.status == "complete" and first.summary.answered == 20 and first.events == []
    assert first.point.judged.status == "no_verdict" and 0 <= first.point.judged.value < 0.5
    [run] = store.series("m", SUITE)
    assert (run.kind, run.suite_version, run.planned, run.passed) == ("scheduled", fp.version, 20, 20)
    rows = store.run_samples(run.id)
    assert {r.case_id for r in rows} == set(fp.prompts) and len(rows) == 20
    assert all(r.turns[0]["text"] and r.turns[0]["top_logprobs"] for r in rows) and rows[0].cost > 0
    out = io.StringIO()  # export sees the probe like any run
    from canary.transfer import export_lines, write_jsonl
    assert write_jsonl(export_lines(store, suite=SUITE), out) == 20 + 1  # and the fingerprint, last
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["turns"][0]["top_logprobs"]
    assert (lines[-1]["record"], lines[-1]["version"], len(lines[-1]["inputs"])) == ("fingerprint", fp.version, 4)
    assert write_jsonl(export_lines(store, suite="another"), io.StringIO()) == 0
    store.close()


def test_a_fingerprinted_model_moved_to_another_database_keeps_its_reference(tmp_path, db_url, sim):
    """`canary export` then `canary import` carry the model's fingerprints with its probes, so
    after the move the probes are judged against the same reference (a new `init` there could
    reference a model already swapped); importing twice adds nothing, and the newest by
    creation stays current whatever order the lines come in."""
    config = write_config(tmp_path, db_url)
    store, clock = Store(config.database_url), Clock(T0)
    initialise(store, config, sim, clock)
    probe_day(store, config, sim, clock)
    initialise(store, config, sim, clock)  # a second fingerprint, the current one
    for _ in range(3):
        probe_day(store, config, sim, clock)
    cli = CliRunner()
    exported = cli.invoke(main, ["export", "--config", str(tmp_path / "canary.yaml")])
    assert exported.exit_code == 0, exported.output
    dump = tmp_path / "history.jsonl"
    dump.write_text(exported.stdout)

    moved = tmp_path / "moved"
    moved.mkdir()
    write_config(moved, f"sqlite:///{moved / 'canary.db'}")
    for expected in ("imported 80 samples, 2 fingerprint(s), skipped 0 already stored",
                     "imported 0 samples, skipped 80 already stored"):
        got = cli.invoke(main, ["import", str(dump), "--config", str(moved / "canary.yaml")])
        assert got.exit_code == 0 and expected in got.output, got.output
    target = Store(f"sqlite:///{moved / 'canary.db'}")
    here, there = current(store, "m"), current(target, "m")
    assert (there.version, there.prompts, there.references, there.logprobs, there.row.created_at) == \
        (here.version, here.prompts, here.references, here.logprobs, here.row.created_at)
    assert [(p.judged.value, p.judged.status) for p in series(target, "m")] == \
        [(p.judged.value, p.judged.status) for p in series(store, "m")]
    target.close()

    reversed_ = tmp_path / "reversed.db"  # the current fingerprint's line first
    lines = dump.read_text().splitlines()
    fingerprint_lines = [line for line in lines if '"record":"fingerprint"' in line]
    assert len(fingerprint_lines) == 2
    other = Store(f"sqlite:///{reversed_}")
    from canary.transfer import import_jsonl
    assert import_jsonl(other, io.StringIO("\n".join(fingerprint_lines[::-1]))) == (0, 0, 2)
    assert current(other, "m").version == here.version
    other.close()
    store.close()


def test_an_api_without_temperature_is_probed_at_its_default(tmp_path, db_url, sim):
    config = write_config(tmp_path, db_url, provider="anthropic", params="{max_tokens: 512}")
    store, clock = Store(config.database_url), Clock(T0)
    result = initialise(store, config, sim, clock)
    assert result.found.temperature is None and not result.found.with_logprobs and len(result.found.kept) == 4
    path, body = sim.requests[-1]
    assert path == "/v1/messages" and body["max_tokens"] == 1 and "temperature" not in body
    assert any("default temperature" in line for line in phase1.summary(result, "m"))
    assert probe_day(store, config, sim, clock).summary.answered == 20
    store.close()


def test_a_reasoning_model_has_too_few_border_inputs_and_says_so(tmp_path, db_url):
    write_config(tmp_path, db_url, params="{reasoning_effort: high}")
    cli = CliRunner()
    got = cli.invoke(main, ["fingerprint", "init", "--model", "m", "--sim", "--config", str(tmp_path / "canary.yaml")])
    assert got.exit_code == 0, got.output
    assert "0 border inputs among 300" in got.output and "No fingerprint was stored" in got.output
    assert "reasoning model" in got.output
    probe_ = cli.invoke(main, ["fingerprint", "probe", "--sim", "--config", str(tmp_path / "canary.yaml")])
    assert probe_.exit_code == 2 and "no fingerprint yet" in probe_.output


def test_an_outage_is_recorded_as_errors_and_judged_as_nothing(tmp_path, db_url):
    config = write_config(tmp_path, db_url, max_retries=0)
    store, clock = Store(config.database_url), Clock(T0)
    with SimServer({}, seed=3) as sim:
        initialise(store, config, sim, clock)
        url = sim.url
    down = asyncio.run(probe(store, config, config.model("m"), slot=clock(), kind="scheduled", clock=clock,
                             provider_factory=endpoint_factory(url, "sim-key")))  # the server is gone
    assert (down.summary.status, down.summary.answered, down.summary.errors) == ("complete", 0, 20)
    assert down.point.judged.status == "no_verdict" and down.point.judged.value is None and down.events == []
    assert {r.error for r in store.run_samples(down.summary.run_id)} == {"connection"}
    store.close()


def test_too_few_border_inputs_are_stored_with_a_plain_warning():
    found = phase1.Found(tried=40, border=["a", "b"], kept=["a", "b"], calls=200)
    lines = phase1.summary(phase1.InitResult(found, "v1", 20), "m")
    assert phase1.InitResult(found, "v1", 20).too_few
    assert any(line.startswith("Too few border inputs: 2 of 20") and "only large changes" in line for line in lines)


# --- the database failing under a probe -------------------------------------------------------------

def probe_run(store):
    """The one probe run, and the (prompt, sample) pairs it holds."""
    with store.begin() as conn:
        [run] = conn.execute(select(runs).where(runs.c.suite == SUITE)).all()
    return run, store.done_samples(run.id)


def test_a_probe_whose_database_fills_up_exits_5_marks_its_run_interrupted_then_resumes(tmp_path, db_url, sim):
    config = write_config(tmp_path, db_url, base_url=sim.url + "/v1")
    store, clock = Store(config.database_url), Clock(T0)
    initialise(store, config, sim, clock)
    sim.configure(latency=0.01)
    full = sqlite_full(store.engine.url.database, 1) if store.dialect == "sqlite" else pg_full(db_url, after=10)
    with full:  # SQLITE_FULL, or PostgreSQL's disk_full, after a few samples
        got = CliRunner().invoke(main, ["fingerprint", "probe", "--config", str(tmp_path / "canary.yaml")],
                                 env={SIM_KEY_ENV: "k"})
    assert got.exit_code == 5, got.output
    [line] = got.stderr.strip().splitlines()
    assert line.startswith("canary: the database failed") and "Traceback" not in got.output
    assert "disk is full" in line or "No space left on device" in line
    assert line.endswith("1 run(s) marked interrupted, their stored samples kept")
    run, kept = probe_run(store)
    # not left `running`, what it stored kept. Whether the failure hits the first group commit
    # or a later one depends on how many samples finished in each commit window (on both
    # databases: seen here), so nothing kept is a possible outcome, and the resume below is
    # what shows that no stored sample is asked again
    assert run.status == "interrupted" and len(kept) < 20
    assert run.passed + run.failed + run.errors == len(kept)  # and its counters say what it holds
    asked = len(sim.requests)
    again = asyncio.run(probe(store, config, config.model("m"), slot=run.slot, kind=run.kind, clock=clock,
                              provider_factory=endpoint_factory(sim.url, "sim-key")))  # the same probe, resumed
    assert again.summary.run_id == run.id and again.summary.status == "complete" and again.summary.answered == 20
    assert len(sim.requests) - asked == 20 - len(kept)  # only its missing calls were made
    assert len(store.done_samples(run.id)) == 20 and again.point is not None
    store.close()


def test_a_probe_whose_database_goes_away_says_so_in_one_line_and_is_resumed_after_its_lease(tmp_path, db_url, sim):
    """The database gone mid-probe (SQLite locked by another writer, PostgreSQL's connections cut):
    the run cannot even be marked; the next probe of the slot takes it over once its lease passed."""
    if db_url.startswith("sqlite"):
        url, lock = db_url + "?timeout=0.2", SqliteWriteLock(db_url.removeprefix("sqlite:///"))
        start, end = lock.hold, lock.release
    else:
        proxy = TcpProxy.in_front_of(db_url)
        url, start, end = proxy.url(db_url), proxy.cut, proxy.restore
    config = write_config(tmp_path, url)
    store, clock = Store(config.database_url), Clock(T0)
    initialise(store, config, sim, clock)
    sim.configure(latency=0.01)
    answered = []

    def on_call():
        answered.append(1)
        if len(answered) == 12:
            start()
    control = Control(lease=config.daemon.lease, owner="a")
    with pytest.raises(StorageError) as failed:
        asyncio.run(probe(store, config, config.model("m"), slot=T0, kind="scheduled", clock=clock, control=control,
                          provider_factory=endpoint_factory(sim.url, "sim-key"), on_call=on_call))
    message = str(failed.value)
    assert "\n" not in message and message.startswith("the database failed")
    assert message.endswith("0 run(s) marked interrupted, their stored samples kept; 1 could not be marked "
                            "and show as running until the next run or daemon finds them")
    end()
    run, kept = probe_run(store)
    assert run.status == "running" and run.owner == "a" and len(kept) < 20
    asked = len(sim.requests)
    clock.now += config.daemon.lease + timedelta(seconds=1)  # its heartbeat is stale: anyone takes it over
    again = asyncio.run(probe(store, config, config.model("m"), slot=T0, kind="scheduled", clock=clock,
                              control=Control(lease=config.daemon.lease, owner="b"),
                              provider_factory=endpoint_factory(sim.url, "sim-key")))
    assert again.summary.run_id == run.id and again.summary.status == "complete" and again.summary.answered == 20
    assert len(sim.requests) - asked == 20 - len(kept)
    assert store.run(run.id).owner == "b"
    store.close()
    if not db_url.startswith("sqlite"):
        proxy.close()


def test_a_slot_already_probed_is_left_alone_and_its_client_closed(tmp_path, db_url, sim):
    """Probing a slot whose probe is complete makes no call and closes the SDK client it made
    (a replica that loses every scheduled probe slot must not leak one a day)."""
    config = write_config(tmp_path, db_url)
    store, clock = Store(config.database_url), Clock(T0)
    initialise(store, config, sim, clock)
    made = []

    def factory(model):
        provider = endpoint_factory(sim.url, "sim-key")(model)
        closes = provider.aclose

        async def aclose():
            made[made.index(provider) + 1] = True
            await closes()
        made.extend([provider, False])
        provider.aclose = aclose
        return provider
    for _ in range(2):
        asyncio.run(probe(store, config, config.model("m"), slot=T0, kind="scheduled", clock=clock,
                          provider_factory=factory))
    calls = len(sim.requests)
    asyncio.run(probe(store, config, config.model("m"), slot=T0, kind="scheduled", clock=clock,
                      provider_factory=factory))
    assert len(sim.requests) == calls  # complete: nothing asked again
    assert made[1::2] == [True, True, True]  # every client made was closed
    store.close()


def test_a_probe_taken_over_by_another_replica_stops_and_leaves_it_to_the_new_owner(tmp_path, db_url, sim):
    """Its heartbeat (a task, off the event loop) finds another owner: no new call, the run not closed."""
    config = write_config(tmp_path, db_url, fingerprint="{inputs: 4, samples: 20, candidates: 300, reference: 20}")
    store, clock = Store(config.database_url), Clock(T0)
    initialise(store, config, sim, clock)
    sim.configure(latency=0.05)
    answered = []

    def on_call():
        answered.append(1)
        if len(answered) == 3:  # another replica takes the run over
            with store.begin() as conn:
                conn.execute(runs.update().where(runs.c.suite == SUITE).values(owner="replica-b"))
    control = Control(lease=timedelta(seconds=0.2), owner="a")  # a heartbeat every 50 ms
    result = asyncio.run(probe(store, config, config.model("m"), slot=T0, kind="scheduled", clock=clock,
                               control=control, provider_factory=endpoint_factory(sim.url, "sim-key"),
                               on_call=on_call))
    assert result.summary is None and result.point is None  # held by another replica
    run, kept = probe_run(store)
    assert run.status == "running" and run.owner == "replica-b"  # not closed by the replica that lost it
    assert 3 <= len(kept) < 80
    store.close()


# --- the episode --------------------------------------------------------------------------------------

def test_a_swapped_model_opens_one_episode_then_recovers(tmp_path, db_url, sim):
    with SlackStub() as slack:
        config = write_config(tmp_path, db_url)
        store, clock = Store(config.database_url), Clock(T0)
        notifier = WebhookNotifier(slack.url + "/hook")
        initialise(store, config, sim, clock)
        quiet = [probe_day(store, config, sim, clock, notifier) for _ in range(10)]
        assert [r.point.judged.status for r in quiet[:9]] == ["no_verdict"] * 9  # 4 excluded + 5 baseline
        assert quiet[9].point.judged.status == "ok" and not any(r.events for r in quiet)
        sim.configure(model_version=2, swap_split_shift=0.45, swap_token_change=0.5)  # the swap, same model id
        swapped = [probe_day(store, config, sim, clock, notifier) for _ in range(4)]
        assert [r.point.judged.status for r in swapped] == ["deviating"] * 4
        assert [r.events for r in swapped] == [[], [], ["opened"], []]  # on the 3rd consecutive probe, once
        assert len(slack.accepted) == 1
        text = slack.accepted[0]["body"]["text"]
        assert "the model behind the name changed" in text and "border inputs answer outside their usual range" in text
        assert f"since {T0 + timedelta(days=10):%Y-%m-%d}" in text  # dated at the first deviating probe
        blocks = json.dumps(slack.accepted[0]["body"]["blocks"])
        assert "quantization or serving path" in blocks and "canary ack --model m --suite fingerprint" in blocks
        [alert] = store.open_alerts("m", SUITE)
        assert alert.kind == "model_changed" and alert.details["moved"] >= 1
        sim.configure(model_version=1)  # the provider rolls back
        back = [probe_day(store, config, sim, clock, notifier) for _ in range(3)]
        assert [r.events for r in back] == [[], [], ["recovered"]]  # 3 calm probes end it
        assert len(slack.accepted) == 2 and "back to normal" in slack.accepted[1]["body"]["text"]
        # the episode's probes stay out of the baseline: the band is the quiet probes' own
        last = back[-1].point.judged
        assert last.baseline == tuple(range(10))
        assert last.mean == pytest.approx(statistics.mean(r.point.judged.value for r in quiet))
        rows = reports.history(store, config, "m", SUITE)
        assert [r["in_alert"] for r in rows].count(True) == 4 and rows[-1]["verdict"] == "ok"
        store.close()


def test_ack_accepts_the_new_model_and_re_references(tmp_path, db_url, sim):
    config = write_config(tmp_path, db_url)
    store, clock = Store(config.database_url), Clock(T0)
    initialise(store, config, sim, clock)
    for _ in range(9):  # the 10th probe is the first with a verdict
        probe_day(store, config, sim, clock)
    before = current(store, "m")
    sim.configure(model_version=2, swap_split_shift=0.45, swap_token_change=0.5)
    events = [probe_day(store, config, sim, clock).events for _ in range(4)]
    assert events == [[], [], ["opened"], []]
    cli = CliRunner().invoke(main, ["ack", "--model", "m", "--suite", "fingerprint",
                                    "--config", str(tmp_path / "canary.yaml")])
    assert cli.exit_code == 0 and "1 alert(s) closed" in cli.output and "re-referenced" in cli.output
    assert store.open_alerts("m", SUITE) == []
    after = current(store, "m")
    assert after.version != before.version and after.row.origin == "ack" and after.prompts == before.prompts
    # the new reference is the swapped model's answers since the episode began: 4 probes x 5 samples
    assert all(sum(after.references[p].values()) == 20 for p in after.prompts)
    assert series(store, "m") == []  # a new series starts
    with pytest.raises(Exception, match="no completed probe"):
        accept(store, "m", clock())  # nothing to take as a reference yet
    fresh = [probe_day(store, config, sim, clock) for _ in range(10)]
    assert not any(r.events for r in fresh) and fresh[-1].point.judged.status == "ok"
    store.close()


def test_quiet_stretch_has_no_false_alarm():
    """Two years of daily probes of an unchanged simulated model: no episode (in process, the
    simulator's own answers; the full figures are tests/benchmarks/fingerprint.py's)."""
    rnd = random.Random(1)
    prompts = [f"w{i}" for i in range(400)]
    models = {p: sim_fingerprint.prompt_model(11, 1, 0.0, 0.0, p) for p in prompts}
    border = [p for p in prompts if models[p].border][:20]
    draws = lambda p, n: [sim_fingerprint.draw(models[p], 0, rnd) for _ in range(n)]  # noqa: E731
    refs = {p: dict(rule.distribution(draws(p, 100))) for p in border}
    probes = [rule.measure(refs, {p: draws(p, 10) for p in border}) for _ in range(730)]
    verdicts = rule.judge(probes)
    assert sum(v.status == "ok" for v in verdicts) > 700 and not any(v.opened for v in verdicts)


# --- the rule, pure ---------------------------------------------------------------------------------

def test_rule_opens_on_the_third_deviating_probe_and_keeps_episodes_out_of_baselines():
    quiet = [rule.Probe(0.10 + 0.01 * (i % 3)) for i in range(12)]
    jumped = [rule.Probe(0.6)] * 5
    calm = [rule.Probe(0.11)] * 3
    verdicts = rule.judge(quiet + jumped + calm)
    assert [v.status for v in verdicts[:9]] == ["no_verdict"] * 9  # exclusion 4 + min baseline 5
    assert [v.opened for v in verdicts[12:17]] == [False, False, True, False, False]
    assert verdicts[14].onset == 12 and all(v.alert for v in verdicts[14:19])
    assert verdicts[16].baseline == tuple(range(12))[-14:]  # the jump is not in it
    assert verdicts[19].closed and not verdicts[19].alert  # three calm probes end the episode
    assert rule.tv_distance({"a": 2, "b": 1}, {"a": 1, "b": 2}) == pytest.approx(1 / 3)
    assert rule.tv_distance({"a": 1}, {}) is None
    means = rule.logprob_means([[("a", -0.1), ("b", -2.0)], [("a", -0.3), ("c", -1.0)]])
    assert means == pytest.approx({"a": -0.2, "b": -1.5, "c": -1.5})  # b and c censored at the call's floor


# --- config, daemon, metrics ----------------------------------------------------------------------

def test_config_validates_fingerprint_settings(tmp_path, db_url):
    from canary.errors import ConfigError
    assert write_config(tmp_path, db_url, fingerprint="true").model("m").fingerprint.inputs == 20
    assert write_config(tmp_path, db_url, fingerprint="false").model("m").fingerprint is None
    with pytest.raises(ConfigError) as exc:
        write_config(tmp_path, db_url, fingerprint="{inputs: 0, candidates: 99999, sample: 3}")
    text = "\n".join(exc.value.problems)
    assert "canary.yaml:9" in text and "inputs" in text and "at most 3000 candidates" in text and "sample" in text


def test_the_daemon_probes_a_fingerprinted_model_in_its_slot(tmp_path, db_url, sim, monkeypatch):
    from canary.daemon import Daemon
    from canary.web import Metrics
    monkeypatch.setenv("OPENAI_API_KEY", "sim-key")
    config = write_config(tmp_path, db_url)
    store, clock = Store(config.database_url), Clock(T0)
    initialise(store, config, sim, clock)
    d = Daemon(tmp_path / "canary.yaml", clock=clock, owner="a", provider_factory=endpoint_factory(sim.url, "k"))

    async def scenario():
        d.catch_up()  # the slot at 06:00 is due
        await d.wait_idle()
    asyncio.run(scenario())
    with store.begin() as conn:
        got = conn.execute(select(runs.c.suite, runs.c.kind, runs.c.status, runs.c.slot)).all()
    assert got == [(SUITE, "scheduled", "complete", T0)]
    asyncio.run(scenario())  # the slot is complete: nothing runs twice
    with store.begin() as conn:
        assert len(conn.execute(select(samples.c.id)).all()) == 20
    text = Metrics(lambda: store, lambda: config).render().decode()
    assert 'canary_fingerprint_distance{model="m"}' in text
    status = reports.status(store, config, {}, T0)
    assert [(r["suite"], r["verdict"]) for r in status] == [(SUITE, "no_verdict")] and status[0]["distance"] >= 0
    from canary.report_html import render_report
    page = render_report(store, config, {}, T0)
    assert '<span>m</span> · <span>fingerprint</span> <span class="badge good">as referenced</span>' in page
    assert 'id="s-m--fingerprint" data-t="[' in page and page.count('data-unit="tv"') == 1  # one probe: no edge yet
    import browser
    if browser.chromium():  # drawn by the page's script without an error
        (tmp_path / "report.html").write_text(page, encoding="utf-8")
        assert browser.load((tmp_path / "report.html").as_uri()).console == []
    d.close()
    store.close()


def test_simulator_swaps_the_served_model_on_both_wires(sim):
    import anthropic
    import openai
    o = openai.OpenAI(api_key="k", base_url=sim.openai_url, max_retries=0)
    a = anthropic.Anthropic(api_key="k", base_url=sim.anthropic_url, max_retries=0)
    prompts = [f"p{i}" for i in range(60)]

    def answers():
        out = {}
        for p in prompts:
            r = o.chat.completions.create(model="x", messages=[{"role": "user", "content": p}], max_completion_tokens=1,
                                          temperature=0)
            out[p] = r.choices[0].message.content
            assert r.choices[0].logprobs is None and r.choices[0].finish_reason == "length"
        return out
    v1 = answers()
    sim.configure(model_version=2, swap_split_shift=0.0, swap_token_change=0.5)
    v2 = answers()
    assert 10 <= sum(v1[p] != v2[p] for p in prompts) <= 50
    r = o.chat.completions.create(model="x", messages=[{"role": "user", "content": "p1"}], max_completion_tokens=1,
                                  temperature=0, logprobs=True, top_logprobs=3)
    assert len(r.choices[0].logprobs.content[0].top_logprobs) == 3
    m = a.messages.create(model="x", max_tokens=1, messages=[{"role": "user", "content": "p1"}])
    assert m.stop_reason == "max_tokens" and m.content[0].text.startswith((" ", "\n"))
    with pytest.raises(anthropic.BadRequestError):
        a.messages.create(model="x", max_tokens=1, extra_body={"temperature": 0}, messages=[{"role": "user", "content": "p1"}])


def test_the_fingerprint_suite_name_is_reserved(tmp_path, db_url):
    from canary.workspace import open_workspace
    write_config(tmp_path, db_url)
    (tmp_path / "prompts" / "fp.yaml").write_text(
        "suite: fingerprint\ncases:\n  - {id: a, prompt: hi, assert: [{type: contains, value: x}], reference: {text: x}}\n")
    ws = open_workspace(tmp_path / "canary.yaml")
    assert "fingerprint" not in ws.suites and any("fp.yaml:1: the suite name 'fingerprint' is reserved" in p
                                                  for p in ws.problems)
