"""`canary calibrate`: each case's pass rate, the cases without signal, and what each `repeat` catches."""
from __future__ import annotations

import click

from ..errors import UsageError
from .common import config_option, json_option


@click.command()
@config_option
@click.option("--model", required=True, help="the configured model to calibrate")
@click.option("--suite", "suite_names", multiple=True, help="only this suite (repeatable; default the model's)")
@click.option("--samples", type=click.IntRange(2, 100), default=10, show_default=True,
              help="samples per case to run (not with --stored)")
@click.option("--stored", is_flag=True, help="measure from the stored history instead of running the cases")
@click.option("--series-years", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="simulated series-years per repeat for the false-alarm rate")
@click.option("--trials", type=click.IntRange(10, 100000), default=400, show_default=True,
              help="simulated regressions per repeat and scenario")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sim", is_flag=True, help="the built-in simulated model and its database (no API key, no network)")
@click.option("--sim-wrong-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="with --sim: share of samples answered wrong")
@json_option
def calibrate(config_path, model, suite_names, samples, stored, series_years, trials, seed, sim, sim_wrong_rate,
              as_json):
    """Each case's pass rate, the cases that carry no signal, and for 1, 3 and 5 samples per case
    the false alarms, the regressions caught within 3 runs and the cost; recommends a repeat."""
    import asyncio
    from contextlib import ExitStack

    from .. import calibrate as lib
    from .. import render
    from ..runner import endpoint_factory, jobs_for, make_provider, run_jobs, utcnow
    from ..workspace import open_workspace

    ws = open_workspace(config_path, sim=sim)
    for problem in ws.problems:
        render.errors.print(problem, markup=False, highlight=False)
    jobs = jobs_for(ws.config, ws.suites, models=[model], suite_names=suite_names, repeat=samples,
                    slot=utcnow(), kind="calibrate")
    if not jobs:
        raise UsageError(f"nothing to calibrate: model {model} has no loaded suite")
    store = ws.store()
    results = []
    with ExitStack() as stack:
        if stored:
            for job in jobs:
                cal = lib.from_history(store, ws.config, model, job.suite)
                if cal is None:
                    raise UsageError(f"no stored run of {model} on {job.suite.name} (suite version "
                                     f"{job.suite.version[:8]}): run `canary calibrate` without --stored")
                results.append((job, cal))
        else:
            factory = make_provider
            if sim:
                from ..sim import SimServer
                server = stack.enter_context(SimServer(ws.suites, wrong_rate=sim_wrong_rate))
                factory = endpoint_factory(server.url, api_key="canary-sim")
            total = sum(len(j.suite.cases) * j.repeat for j in jobs)
            with render.progress(total, enabled=not as_json) as advance:
                summaries = asyncio.run(run_jobs(store, jobs, provider_factory=factory, on_sample=advance))
            for job, s in zip(jobs, summaries):
                results.append((job, lib.from_runs(store, model, job.suite, [s.run_id],
                                                   f"calibrate run ({samples} samples per case)")))
    for job, cal in results:
        lib.simulate(cal, ws.config, job.model, series_years=series_years, trials=trials, seed=seed)
        lib.cache_min_drop(store, cal, ws.config, job.model, job.suite, utcnow(), seed=seed)
    store.close()
    if as_json:
        render.print_json({"model": model, "suites": [cal.as_dict() for _, cal in results]})
        return
    for job, cal in results:
        render.console.print(render.calibration_cases(cal))
        render.console.print(render.calibration_power(cal, job.model.repeat or job.suite.repeat))
