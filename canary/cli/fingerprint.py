"""`canary fingerprint init|probe|status`: border inputs found once, probed with one-token calls."""
from __future__ import annotations

import sys

import click

from ..errors import UsageError
from .common import EXIT_ALERT, EXIT_DOWN, EXIT_OK, config_option, json_option, sim_db_option


def _fingerprinted(ws, name: str | None):
    models = [m for m in ws.config.models if m.fingerprint is not None]
    if name is not None:
        if name not in {m.name for m in ws.config.models}:
            raise UsageError(f"unknown model '{name}' (configured: {', '.join(m.name for m in ws.config.models)})")
        models = [m for m in models if m.name == name]
        if not models:
            raise UsageError(f"model {name} has no fingerprint: set `fingerprint: true` on it in canary.yaml")
    elif not models:
        raise UsageError("no model has a fingerprint: set `fingerprint: true` on a model in canary.yaml")
    return models


def _sim(sim: bool, model_version: int):
    """The simulated model in fingerprint mode (its own database), or nothing."""
    from contextlib import nullcontext
    if not sim:
        return nullcontext(None)
    from ..sim import SimServer
    return SimServer({}, model_version=model_version)


def _factory(server):
    from ..runner import endpoint_factory, make_provider
    return endpoint_factory(server.url, api_key="canary-sim") if server else make_provider


@click.group()
def fingerprint():
    """Notice that the model behind a name was swapped (border inputs, one-token probes)."""


sim_options = [
    click.option("--sim", is_flag=True, help="against the built-in simulated model, in its own database"),
    click.option("--sim-model-version", type=click.IntRange(1), default=1, show_default=True,
                 help="with --sim: 2, 3...: a swapped model behind the same name"),
]


def _with_sim(f):
    for option in reversed(sim_options):
        f = option(f)
    return f


@fingerprint.command()
@config_option
@click.option("--model", required=True)
@click.option("--candidates", type=click.IntRange(1), help="candidate prompts to try at most (default: config)")
@click.option("--yes", is_flag=True, help="do not ask before spending (the estimate is still printed)")
@_with_sim
def init(config_path, model, candidates, yes, sim, sim_model_version):
    """Phase 1: find the model's border inputs and sample their reference distributions."""
    import asyncio

    from .. import render
    from ..fingerprint import phase1
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim)
    [m] = _fingerprinted(ws, model)
    est = phase1.estimate(m, m.fingerprint, candidates)
    cost = "" if est.cost_max is None else f", ${est.cost_typical:.4f} typical, ${est.cost_max:.4f} at most"
    render.console.print(f"{m.name}: about {est.calls_typical:,} one-token calls (at most {est.calls_max:,}, "
                         f"~{est.input_tokens:,} input tokens at most){cost}", markup=False)
    if not (yes or sim) and sys.stdin.isatty() and not click.confirm("go on?", default=True):
        sys.exit(EXIT_OK)
    store = ws.store()
    with _sim(sim, sim_model_version) as server, render.phases() as progress:
        result = asyncio.run(phase1.init(store, m, candidates=candidates, provider_factory=_factory(server),
                                         progress=progress))
    store.close()
    for line in phase1.summary(result, m.name):
        render.console.print(line, markup=False)
    if result.found.calls and result.found.errors == result.found.calls:
        sys.exit(EXIT_DOWN)


@fingerprint.command()
@config_option
@click.option("--model", help="only this model (default: every fingerprinted model)")
@json_option
@_with_sim
def probe(config_path, model, as_json, sim, sim_model_version):
    """Phase 2: one probe now; judged against the series, alerting when the model changed."""
    import asyncio

    from .. import render
    from ..alerts import notifier_from_config
    from ..fingerprint.probe import planned_calls, probe as run_probe
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim)
    models = _fingerprinted(ws, model)
    store = ws.store()
    results = []
    with _sim(sim, sim_model_version) as server:
        for m in models:
            with render.progress(planned_calls(store, m), enabled=not as_json) as advance:
                results.append(asyncio.run(run_probe(store, ws.config, m, provider_factory=_factory(server),
                                                     notifier=notifier_from_config(ws.config.alerts),
                                                     on_call=advance, sim=sim)))
    store.close()
    rows = [{"model": m.name, "run_id": r.summary.run_id if r.summary else None,
             "status": r.summary.status if r.summary else "held elsewhere",
             "answered": r.summary.answered if r.summary else 0, "errors": r.summary.errors if r.summary else 0,
             "distance": r.point.judged.value if r.point else None, "mean": r.point.judged.mean if r.point else None,
             "upper": r.point.judged.upper if r.point else None,
             "verdict": r.point.judged.status if r.point else None,
             "reason": r.point.judged.reason if r.point else None, "alerts": r.events}
            for m, r in zip(models, results)]
    if as_json:
        render.print_json({"probes": rows})
    else:
        for row in rows:
            render.console.print(render.fingerprint_probe_line(row), markup=False)
    if rows and all(r["answered"] == 0 for r in rows):
        sys.exit(EXIT_DOWN)
    sys.exit(EXIT_ALERT if any("opened" in r["alerts"] for r in rows) else EXIT_OK)


@fingerprint.command()
@config_option
@click.option("--model", help="only this model (default: every fingerprinted model)")
@json_option
@sim_db_option
def status(config_path, model, as_json, sim):
    """Inputs, reference, last probes, distance and band, alert state."""
    from .. import render
    from ..fingerprint import views
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim, reading=True)
    models = _fingerprinted(ws, model)
    with ws.reader() as store:
        data = [views.status(store, ws.config, m.name) for m in models]
    if as_json:
        render.print_json({"fingerprints": data})
    else:
        for d in data:
            render.fingerprint_status(d)
