"""Moving history: every stored sample out as JSONL, and such JSONL back in."""
from __future__ import annotations

import sys
from datetime import datetime

import click

from .common import config_option, sim_db_option


@click.command("export")
@config_option
@click.option("--model")
@click.option("--suite")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="only runs whose slot is at or after this date (UTC)")
@sim_db_option
def export_(config_path, sim, model, suite, since: datetime | None):
    """Every stored sample as JSONL on stdout, one object a line."""
    from ..transfer import export_lines, write_jsonl
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim, reading=True)
    store = ws.store()
    write_jsonl(export_lines(store, model=model, suite=suite, since=since), sys.stdout)
    store.close()


@click.command("import")
@config_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
@sim_db_option
def import_(config_path, sim, file):
    """Load JSONL written by `canary export` (a sample already stored is skipped)."""
    from .. import render
    from ..transfer import import_jsonl
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim, reading=True)
    store = ws.store()
    done = import_jsonl(store, file, name=getattr(file, "name", "<stdin>"))
    store.close()
    fingerprints = f", {done.fingerprints} fingerprint(s)" if done.fingerprints else ""
    render.console.print(f"imported {done.added} samples{fingerprints}, skipped {done.skipped} already stored")
