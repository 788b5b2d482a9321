"""Running canaries: one run now (`canary run`) and the scheduler (`canary daemon`)."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from ..errors import UsageError
from .common import EXIT_USAGE, config_option, exit_code, fault_option, print_findings


def sim_options(fn):
    """--sim and the simulated model's knobs (run and daemon)."""
    for option in reversed([
        click.option("--sim", is_flag=True, help="answer with the built-in simulated model (no API key, no network)"),
        click.option("--sim-wrong-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
                     help="with --sim: share of samples answered wrong"),
        click.option("--sim-error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
                     help="with --sim: share of cases answered with 529 overloaded"),
        click.option("--sim-latency", type=click.FloatRange(0, 60), default=0.0, help="with --sim: seconds per call"),
    ]):
        fn = option(fn)
    return fn


@contextmanager
def settled(jobs):
    """While the samples run: what this process built before them (the SDKs, SQLAlchemy, the
    config: some hundred thousand objects that live until exit) is out of the cyclic garbage
    collector's sight, so its collections walk what the run allocates, not them (a few
    hundredths of a second of CPU a run; how often it collects is set once for every command,
    in `entry`). The SDKs of the jobs' providers are imported first (the run would next); the
    collector is as it was afterwards, for a caller that goes on (a test)."""
    import gc

    from ..providers import provider_class
    for name in {job.model.provider for job in jobs}:
        provider_class(name)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@click.command()
@config_option
@click.option("--model", "models", multiple=True, help="only this model (repeatable)")
@click.option("--suite", "suite_names", multiple=True, help="only this suite (repeatable)")
@click.option("--repeat", type=click.IntRange(1, 100), help="samples per case (overrides config and suite)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@sim_options
@fault_option("--sim-fault")
@click.option("--sim-fault-rate", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="with --sim-fault: share of each suite's cases that get it")
@click.option("--resume", is_flag=True, help="continue the latest interrupted run of each model and suite "
                                            "(only its missing samples) instead of starting a new one")
def run(config_path, models, suite_names, repeat, as_json, sim, sim_wrong_rate, sim_error_rate, sim_latency,
        sim_fault, sim_fault_rate, resume):
    """One run now: every configured model on its suites; stores every sample.

    A suite file that does not load is reported and the others run; the exit code is then 2.
    A run left `running` by a `canary run` that was killed is marked interrupted first (its
    samples are kept); `--resume` continues it."""
    import asyncio
    from contextlib import ExitStack

    from .. import render
    from ..alerts import notifier_from_config
    from ..monitor import run_and_watch
    from ..runner import Control, endpoint_factory, jobs_for, make_provider, owner_id, planned_samples, utcnow
    from ..slots import interrupt_orphans, process_gone, resumable
    from ..workspace import open_workspace

    ws = open_workspace(config_path, sim=sim)
    print_findings(ws)
    jobs = jobs_for(ws.config, ws.suites, models=models, suite_names=suite_names, repeat=repeat, slot=utcnow())
    if not jobs:
        raise UsageError("nothing to run: no configured model has a loaded suite")
    store = ws.store()
    control = Control(lease=ws.config.daemon.lease, owner=owner_id())
    for row in interrupt_orphans(store, utcnow(), ws.config.daemon.lease, lambda owner, _kind: process_gone(owner, control.owner)):
        render.errors.print(f"canary: run {row.id} ({row.model} · {row.suite}, {row.slot:%Y-%m-%d %H:%M} UTC) was left "
                            f"running by a process that is gone: marked interrupted, "
                            f"{row.passed + row.failed + row.errors}/{row.planned} samples kept (`canary run --resume` "
                            "continues it)", markup=False, highlight=False)
    if resume:
        resumed = resumable(store, jobs)
        jobs = [job for job, _row in resumed]
        for _job, row in resumed:
            if row is not None:
                render.errors.print(f"canary: resuming run {row.id} ({row.model} · {row.suite}, "
                                    f"{row.slot:%Y-%m-%d %H:%M} UTC)", markup=False, highlight=False)
    with ExitStack() as stack:
        factory = make_provider
        if sim:
            from ..sim import SimServer
            server = stack.enter_context(SimServer(ws.suites, wrong_rate=sim_wrong_rate, error_rate=sim_error_rate,
                                                   latency=sim_latency, fault=sim_fault, fault_rate=sim_fault_rate))
            factory = endpoint_factory(server.url, api_key="canary-sim")
        total = sum(len(planned_samples(j.suite, j.repeat)) for j in jobs)
        try:
            with render.progress(total, enabled=not as_json) as advance, settled(jobs):
                watch = asyncio.run(run_and_watch(store, ws.config, jobs, provider_factory=factory, control=control,
                                                  on_sample=advance, notifier=notifier_from_config(ws.config.alerts),
                                                  sim=ws.sim))
        except KeyboardInterrupt:
            n = store.mark_interrupted(control.owner, utcnow())
            render.errors.print(f"canary: interrupted; {n} run(s) marked interrupted, their stored samples kept")
            sys.exit(130)
    from ..failures import breached
    broken = breached(store, ws.config, watch.assessments)
    store.close()
    if as_json:
        render.print_json({"runs": [s.as_dict() for s in watch.summaries],
                           "confirmations": [s.as_dict() for s in watch.confirmations],
                           "alerts": [e.__dict__ for e in watch.events],
                           "breached": [f.as_dict() for f in broken]})
    else:
        render.console.print(render.run_table(watch.summaries, watch.confirmations))
        for f in broken:
            render.print_newly_failing(f, f"canary failures --model {f.model} --suite {f.suite}" + (" --sim" if sim else ""))
        for e in watch.events:
            render.console.print(f"alert {e.action}: {e.model} · {e.suite}: {e.kind}")
        if sim:
            render.console.print(f"simulated model: stored in {ws.store_path_hint}, apart from real history "
                                 "(see it with `canary status --sim`)", markup=False)
    if ws.problems:
        render.errors.print(f"canary: {len(ws.problems)} problem(s) in the config or the suites (listed first); "
                            "the suites that loaded ran", markup=False, highlight=False)
        sys.exit(EXIT_USAGE)
    sys.exit(exit_code(watch.summaries, watch.regression))


@click.command()
@config_option
@click.option("--once", is_flag=True, help="run every due slot (the catch-up rule), then exit (for cron)")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human", show_default=True)
@sim_options
def daemon(config_path, once, log_format, sim, sim_wrong_rate, sim_error_rate, sim_latency):
    """The scheduler in the foreground: cron per model, HTTP /healthz and /metrics and the report at /.

    With --sim the models are answered by the built-in simulated model and the runs go to
    canary-sim.db, as with `canary run --sim`; new suite files are picked up as they appear."""
    if sim:
        from ..sim_daemon import run_sim_daemon
        watches = run_sim_daemon(config_path, once=once, log_format=log_format, wrong_rate=sim_wrong_rate,
                                 error_rate=sim_error_rate, latency=sim_latency)
    else:
        from ..service import run_daemon
        watches = run_daemon(config_path, once=once, log_format=log_format)
    sys.exit(exit_code([s for w in watches for s in w.summaries], any(w.regression for w in watches)))
