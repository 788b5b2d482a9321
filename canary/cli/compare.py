"""`canary compare A B`: can model B replace model A? A verdict a rollout can gate on.

Exit 0 when B is better or no worse (within the margin), 1 when worse, 4 when the data
cannot tell yet (3 when fresh runs could answer nothing, 2 on bad usage).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UsageError
from .common import EXIT_ALERT, EXIT_DOWN, EXIT_INCONCLUSIVE, EXIT_OK, config_option, json_option, known_series

EXIT_FOR_VERDICT = {"better": EXIT_OK, "no_worse": EXIT_OK, "worse": EXIT_ALERT, "inconclusive": EXIT_INCONCLUSIVE}


@click.command()
@config_option
@click.argument("a")
@click.argument("b")
@click.option("--suite", "suite_names", multiple=True, help="only this suite (repeatable)")
@click.option("--fresh", is_flag=True, help="run the suites for both models now (runs of kind compare), then compare")
@click.option("--repeat", type=click.IntRange(1, 100), help="with --fresh: samples per case (default: the larger "
                                                            "of the two models')")
@click.option("--since", help="compare stored runs since a duration ago (3d, 12h, 2w) or a date (UTC); default 7d")
@click.option("--margin", type=click.FloatRange(0, 100, max_open=True), default=5.0, show_default=True,
              help="non-inferiority margin in points: B may be this much worse and still pass")
@json_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="also write the comparison as an HTML page")
@click.option("--sim", is_flag=True, help="with --fresh: answer with the simulated model; else read its database")
@click.option("--sim-break", multiple=True, metavar="CASE",
              help="with --sim --fresh: B answers this case (id or suite/id) wrong every time (repeatable)")
@click.option("--sim-wrong-rate", type=click.FloatRange(0, 1), help="with --sim --fresh: B's share of wrong samples")
@click.option("--sim-token-scale", type=click.FloatRange(0, 100, min_open=True),
              help="with --sim --fresh: B reports this many times the output tokens, same answers")
def compare(config_path, a, b, suite_names, fresh, repeat, since, margin, as_json, out, sim, sim_break,
            sim_wrong_rate, sim_token_scale):
    """Can B replace A? Paired by case: verdict, regressed cases, cost per correct answer.

    Exit 0 when B is better or no worse (within --margin), 1 when worse, 4 when the data
    cannot tell yet."""
    from .. import render
    from ..comparison import judge, parse_since, select_suites, stored_runs
    from ..runner import utcnow
    from ..workspace import open_workspace

    shaping = bool(sim_break) or sim_wrong_rate is not None or sim_token_scale is not None
    if a == b:
        raise UsageError("compare needs two different models")
    if fresh and since is not None:
        raise UsageError("--fresh runs both models now; --since reads stored runs: give one of them")
    if repeat is not None and not fresh:
        raise UsageError("--repeat goes with --fresh")
    if shaping and not (sim and fresh):
        raise UsageError("--sim-break, --sim-wrong-rate and --sim-token-scale go with --sim --fresh")
    ws = open_workspace(config_path, sim=sim)
    for problem in ws.problems:
        render.errors.print(problem, markup=False, highlight=False)
    store = ws.store()
    answered_nothing = False
    if fresh:
        report, answered_nothing = _fresh(ws, store, a, b, list(suite_names), repeat, margin / 100, sim,
                                          dict(wrong_cases=sim_break, wrong_rate=sim_wrong_rate,
                                               output_scale=sim_token_scale or 1.0) if shaping else None,
                                          progress=not as_json)
    else:
        known_series(ws, store, [a, b], None)
        start = parse_since(since, utcnow())
        suites = select_suites(ws.suites, list(suite_names), sorted(ws.suites))
        runs = stored_runs(store, a, b, suites, start)
        if not suite_names:  # by default, the suites either model ran in the window
            suites = [s for s in suites if runs[a, s.name] or runs[b, s.name]]
        report = judge(store, ws.config, a, b, runs, suites, margin=margin / 100, mode="stored", since=start)
        if not suites:
            report.notes.append(f"no stored runs of {a} or {b} since {start:%Y-%m-%d %H:%M} UTC on the current "
                                f"version of any suite")
    store.close()
    code = EXIT_DOWN if answered_nothing else EXIT_FOR_VERDICT[report.verdict]
    if out is not None:
        from ..compare_html import render_comparison
        try:
            out.write_text(render_comparison(report, f"{utcnow():%Y-%m-%d %H:%M} UTC"), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    if as_json:
        render.print_json({**report.as_dict(), "exit_code": code})
    else:
        for part in render.compare_tables(report):
            render.console.print(part)
        if out is not None:
            render.console.print(f"wrote {out}", markup=False)
    sys.exit(code)


def _fresh(ws, store, a: str, b: str, suite_names: list[str], repeat: int | None, margin: float, sim: bool,
           shaping: dict | None, progress: bool):
    """Run both models now (kind `compare`), then judge those runs. Returns (report, answered nothing)."""
    import asyncio
    from contextlib import ExitStack

    from .. import render
    from ..comparison import fresh_jobs, fresh_runs, judge, select_suites
    from ..runner import Control, endpoint_factory, make_provider, owner_id, planned_samples, utcnow

    configured = {m.name: m for m in ws.config.models}
    for name in (a, b):
        if name not in configured:
            raise UsageError(f"--fresh runs configured models only; '{name}' is not one "
                             f"(configured: {', '.join(configured) or 'none'})")
    ma, mb = configured[a], configured[b]
    both = [n for n in sorted(ws.suites) if all(m.suites is None or n in m.suites for m in (ma, mb))]
    suites = select_suites(ws.suites, suite_names, both)
    if not suites:
        raise UsageError(f"{a} and {b} share no loaded suite (name one with --suite)")
    jobs = fresh_jobs(ma, mb, suites, repeat, utcnow())
    control = Control(lease=ws.config.daemon.lease, owner=owner_id())
    with ExitStack() as stack:
        factory = make_provider
        if sim:
            from ..sim import SimServer
            behaviours = (_sim_behaviour(ws, ma, mb, shaping),) if shaping else ()
            server = stack.enter_context(SimServer(ws.suites, models=behaviours))
            factory = endpoint_factory(server.url, api_key="canary-sim")
        total = sum(len(planned_samples(j.suite, j.repeat)) for j in jobs)
        try:
            with render.progress(total, enabled=progress) as advance:
                runs, summaries = asyncio.run(fresh_runs(store, jobs, control=control, provider_factory=factory,
                                                         on_sample=advance))
        except KeyboardInterrupt:
            n = store.mark_interrupted(control.owner, utcnow())
            render.errors.print(f"canary: interrupted; {n} run(s) marked interrupted, their stored samples kept")
            sys.exit(130)
    report = judge(store, ws.config, a, b, runs, suites, margin=margin, mode="fresh", since=None)
    return report, all(s.answered == 0 for s in summaries)


def _sim_behaviour(ws, ma, mb, shaping: dict):
    """B's behaviour in the simulator, picked by what B sends and A does not."""
    from ..sim_models import Behaviour, check_breakable, distinguishing
    when = distinguishing(mb.model, mb.params, ma.model, ma.params)
    if when is None:
        raise UsageError(f"{ma.name} and {mb.name} send the same model id and params: the simulator cannot "
                         "tell them apart")
    behaviour = Behaviour(when=when, **shaping)
    problems = check_breakable(behaviour, ws.suites)
    if problems:
        raise UsageError("--sim-break: " + "; ".join(problems))
    return behaviour
