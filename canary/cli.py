"""The `canary` command: each subcommand is a short wrapper over a library function.

Exit codes: 0 done; 1 a regression alert was raised by this command; 2 bad config, bad
suite or bad usage (a message, no traceback); 3 no sample could be answered (service down).
"""
from __future__ import annotations

import asyncio
import sys
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import click

from . import render
from .errors import CanaryError, ConfigError, StorageError, UsageError
from .runner import RunSummary, endpoint_factory, jobs_for, make_provider, planned_samples, run_jobs, utcnow
from .workspace import init_project, open_workspace

EXIT_OK, EXIT_ALERT, EXIT_USAGE, EXIT_DOWN = 0, 1, 2, 3


class Command(click.Group):
    """Turns canary's own errors into a message and an exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                render.errors.print(problem, markup=False, highlight=False)
            sys.exit(EXIT_USAGE)
        except (UsageError, StorageError, CanaryError) as exc:
            render.errors.print(f"canary: {exc}", markup=False, highlight=False)
            sys.exit(EXIT_USAGE)


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                             help="canary.yaml (default: $CANARY_CONFIG, then ./canary.yaml)")


@click.group(cls=Command)
@click.version_option(package_name="canary")
def main():
    """canary: daily known-answer canaries for hosted LLMs."""


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path):
    """Write a starter canary.yaml and the starter suites into DIRECTORY."""
    for path in init_project(directory):
        render.console.print(f"wrote {path}")
    render.console.print("next: canary validate, then canary run --sim (no API key needed)")


@main.command()
@config_option
def validate(config_path):
    """Check canary.yaml and every suite (each case's reference must pass its own asserts)."""
    ws = open_workspace(config_path, check_references=True)
    if ws.problems:
        raise ConfigError(ws.problems)
    cases = sum(len(s.cases) for s in ws.suites.values())
    render.console.print(f"ok: {len(ws.config.models)} models, {len(ws.suites)} suites, {cases} cases "
                         f"({ws.config.path})")


@main.command()
@config_option
@click.option("--model", "models", multiple=True, help="only this model (repeatable)")
@click.option("--suite", "suite_names", multiple=True, help="only this suite (repeatable)")
@click.option("--repeat", type=click.IntRange(1, 100), help="samples per case (overrides config and suite)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--sim", is_flag=True, help="answer with the built-in simulated model (no API key, no network)")
@click.option("--sim-wrong-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="with --sim: share of samples answered wrong")
@click.option("--sim-error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="with --sim: share of cases answered with 529 overloaded")
@click.option("--sim-latency", type=click.FloatRange(0, 60), default=0.0, help="with --sim: seconds per call")
def run(config_path, models, suite_names, repeat, as_json, sim, sim_wrong_rate, sim_error_rate, sim_latency):
    """One run now: every configured model on its suites; stores every sample."""
    ws = open_workspace(config_path)
    for problem in ws.problems:
        render.errors.print(problem, markup=False, highlight=False)
    jobs = jobs_for(ws.config, ws.suites, models=models, suite_names=suite_names, repeat=repeat, slot=utcnow())
    if not jobs:
        raise UsageError("nothing to run: no configured model has a loaded suite")
    store = ws.store()
    with ExitStack() as stack:
        factory = make_provider
        if sim:
            from .sim import SimServer
            server = stack.enter_context(SimServer(ws.suites, wrong_rate=sim_wrong_rate,
                                                   error_rate=sim_error_rate, latency=sim_latency))
            factory = endpoint_factory(server.url, api_key="canary-sim")
        total = sum(len(planned_samples(j.suite, j.repeat)) for j in jobs)
        with render.progress(total, enabled=not as_json) as advance:
            summaries = asyncio.run(run_jobs(store, jobs, provider_factory=factory, on_sample=advance))
    store.close()
    if as_json:
        render.print_json({"runs": [s.as_dict() for s in summaries]})
    else:
        render.console.print(render.run_table(summaries))
    sys.exit(exit_code(summaries))


def exit_code(summaries: list[RunSummary], alerted: bool = False) -> int:
    if summaries and all(s.answered == 0 for s in summaries):
        return EXIT_DOWN
    return EXIT_ALERT if alerted else EXIT_OK


@main.command()
@config_option
@click.option("--model", required=True)
@click.option("--suite", required=True)
@click.option("--json", "as_json", is_flag=True)
def history(config_path, model, suite, as_json):
    """The pass-rate series of one model and suite."""
    ws = open_workspace(config_path)
    store = ws.store()
    rows = store.series(model, suite, statuses=("complete", "interrupted", "budget_exhausted"))
    store.close()
    data = [{**RunSummary.of(r).as_dict(), "slot": r.slot.isoformat(), "kind": r.kind,
             "suite_version": r.suite_version} for r in rows]
    if as_json:
        render.print_json({"model": model, "suite": suite, "runs": data})
        return
    if not data:
        render.console.print(f"no runs of {model} on {suite} yet")
        return
    table = render.Table(title=f"{model} · {suite}")
    for col in ("slot", "kind", "status", "pass rate", "errors", "out tokens", "p50 latency"):
        table.add_column(col)
    for d in data:
        table.add_row(d["slot"][:16], d["kind"], d["status"],
                      f"{render.pct(d['pass_rate'])} ({d['passed']}/{d['passed'] + d['failed']})",
                      str(d["errors"]), f"{d['output_tokens']:,}", render.ms(d["latency_p50_ms"]))
    render.console.print(table)


@main.command("export")
@config_option
@click.option("--model")
@click.option("--suite")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="only runs whose slot is at or after this date (UTC)")
def export_(config_path, model, suite, since: datetime | None):
    """Every stored sample as JSONL on stdout, one object a line."""
    from .transfer import export_records, write_jsonl
    ws = open_workspace(config_path)
    store = ws.store()
    write_jsonl(export_records(store, model=model, suite=suite, since=since), sys.stdout)
    store.close()


@main.command("import")
@config_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
def import_(config_path, file):
    """Load JSONL written by `canary export` (a sample already stored is skipped)."""
    from .transfer import import_jsonl
    ws = open_workspace(config_path)
    store = ws.store()
    added, skipped = import_jsonl(store, file, name=getattr(file, "name", "<stdin>"))
    store.close()
    render.console.print(f"imported {added} samples, skipped {skipped} already stored")


@main.group()
def db():
    """Database maintenance."""


@db.command()
@config_option
def upgrade(config_path):
    """Apply pending migrations (run and daemon also do this on start)."""
    ws = open_workspace(config_path)
    store = ws.store()
    render.console.print(f"database at the current schema: {store.safe_url}")
    store.close()


@main.command()
@config_option
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True)
@click.option("--wrong-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--error-status", type=int, default=529, show_default=True)
@click.option("--flaky-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--latency", type=click.FloatRange(0, 60), default=0.0, show_default=True)
@click.option("--seed", type=int)
def sim(config_path, port, **knobs):
    """Serve the simulated model on 127.0.0.1 (Anthropic and OpenAI wire formats)."""
    from .sim import serve
    ws = open_workspace(config_path)
    render.errors.print(f"simulated model on http://127.0.0.1:{port} (Anthropic) and "
                        f"http://127.0.0.1:{port}/v1 (OpenAI); Ctrl-C stops it")
    serve(ws.suites, port, **knobs)


if __name__ == "__main__":
    main()
