"""`canary failures`: the failing cases of a model's latest runs, newly failing first."""
from __future__ import annotations

from datetime import datetime

import click

from ..errors import UsageError
from .common import config_option, json_option, known_series, sim_db_option


@click.command()
@config_option
@click.option("--model", required=True)
@click.option("--suite", help="only this suite")
@click.option("--run", "run_id", type=int, help="this run (pooled with its confirmation run), not the latest")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="every run since this date (UTC), pooled")
@json_option
@sim_db_option
def failures(config_path, sim, model, suite, run_id, since: datetime | None, as_json):
    """Which cases fail, since when, and what the model answered: newly failing cases first."""
    from .. import render
    from ..failures import model_failures
    from ..workspace import open_workspace
    if run_id is not None and since is not None:
        raise UsageError("give --run or --since, not both")
    ws = open_workspace(config_path, sim=sim, reading=True)
    with ws.reader() as store:
        known_series(ws, store, [model], suite)
        found = model_failures(store, ws.config, model, suite=suite, run_id=run_id, since=since)
    if as_json:
        render.print_json({"model": model, "series": [f.as_dict() for f in found]})
        return
    if not found:
        render.console.print(f"no completed runs of {model}" + (f" on {suite}" if suite else "") + " yet",
                             markup=False)
    for f in found:
        render.print_failures(f)
