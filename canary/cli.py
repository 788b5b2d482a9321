"""The `canary` command: each subcommand is a short wrapper over a library function.

Exit codes: 0 done; 1 a regression alert was raised by this command; 2 bad config, bad
suite or bad usage (a message, no traceback); 3 no sample could be answered (service down).
"""
from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import click

from . import alerts, logs, monitor, render, reports
from .alerts import notifier_from_config
from .monitor import run_and_watch
from .errors import CanaryError, ConfigError, StorageError, UsageError
from .runner import (Control, RunSummary, endpoint_factory, jobs_for, make_provider, owner_id, planned_samples,
                     utcnow)
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
sim_db_option = click.option("--sim", is_flag=True,
                             help="the simulated model's database (what `run --sim` wrote), not the real one")


@click.group(cls=Command)
@click.version_option(package_name="canary")
def main():
    """canary: daily known-answer canaries for hosted LLMs."""
    # warnings on stderr, any value of a secret-looking environment variable redacted;
    # `canary daemon` sets up its own logging
    logs.setup_logging("human", level=logging.WARNING, secret_envs=logs.secret_looking_envs())


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
    ws = open_workspace(config_path, sim=sim)
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
        control = Control(lease=ws.config.daemon.lease, owner=owner_id())
        try:
            with render.progress(total, enabled=not as_json) as advance:
                watch = asyncio.run(run_and_watch(store, ws.config, jobs, provider_factory=factory, control=control,
                                                  on_sample=advance, notifier=notifier_from_config(ws.config.alerts)))
        except KeyboardInterrupt:
            n = store.mark_interrupted(control.owner, utcnow())
            render.errors.print(f"canary: interrupted; {n} run(s) marked interrupted, their stored samples kept")
            sys.exit(130)
    store.close()
    if as_json:
        render.print_json({"runs": [s.as_dict() for s in watch.summaries],
                           "confirmations": [s.as_dict() for s in watch.confirmations],
                           "alerts": [e.__dict__ for e in watch.events]})
    else:
        render.console.print(render.run_table(watch.summaries + watch.confirmations))
        for e in watch.events:
            render.console.print(f"alert {e.action}: {e.model} · {e.suite}: {e.kind}")
        if sim:
            render.console.print(f"simulated model: stored in {ws.store_path_hint}, apart from real history "
                                 "(see it with `canary status --sim`)", markup=False)
    sys.exit(exit_code(watch.summaries, watch.regression))


def known_series(ws, store, models: list[str], suite: str | None) -> None:
    """A model or suite named on the command line must be configured or have stored runs."""
    stored = {(r.model, r.suite) for r in store.latest_runs()}
    for model in models:
        if model not in {m.name for m in ws.config.models} and model not in {m for m, _ in stored}:
            raise UsageError(f"unknown model '{model}' (configured: {', '.join(m.name for m in ws.config.models)})")
    if suite is not None and suite not in ws.suites and suite not in {s for _, s in stored}:
        raise UsageError(f"unknown suite '{suite}' (loaded: {', '.join(sorted(ws.suites))})")


def exit_code(summaries: list[RunSummary], regression: bool = False) -> int:
    """3 when no sample of the command could be answered, else 1 on a new regression alert."""
    if summaries and all(s.answered == 0 for s in summaries):
        return EXIT_DOWN
    return EXIT_ALERT if regression else EXIT_OK


@main.command()
@config_option
@click.option("--model", required=True)
@click.option("--suite", required=True)
@click.option("--json", "as_json", is_flag=True)
@sim_db_option
def history(config_path, sim, model, suite, as_json):
    """The pass-rate series of one model and suite, with its band."""
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    known_series(ws, store, [model], suite)
    data = reports.history(store, ws.config, model, suite)
    store.close()
    if as_json:
        render.print_json({"model": model, "suite": suite, "runs": data})
    elif not data:
        render.console.print(f"no completed runs of {model} on {suite} yet")
    else:
        render.console.print(render.history_table(f"{model} · {suite}", data))


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
@sim_db_option
def status(config_path, sim, as_json):
    """Per model and suite: last run, pass rate, rolling mean and band, alert state, next run."""
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    rows = reports.status(store, ws.config, ws.suites, utcnow())
    store.close()
    if as_json:
        render.print_json({"series": rows})
    else:
        render.console.print(render.status_table(rows))


@main.command("alerts")
@config_option
@click.option("--json", "as_json", is_flag=True)
@sim_db_option
def alerts_(config_path, sim, as_json):
    """Alerts, newest first, and the delivery state of their messages."""
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    rows = alerts.list_alerts(store)
    store.close()
    if as_json:
        render.print_json({"alerts": rows})
    else:
        render.console.print(render.alerts_table(rows))


@main.command()
@config_option
@click.option("--model", required=True)
@click.option("--suite", required=True)
@sim_db_option
def ack(config_path, sim, model, suite):
    """Accept today's level: close the open alert; the baseline restarts from the last run."""
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    closed = monitor.ack(store, model, suite, utcnow())
    store.close()
    render.console.print(f"acknowledged {model} · {suite}: {closed} alert(s) closed, baseline restarts here")


@main.command()
@click.option("--suite", default="reasoning", show_default=True, help="starter suite to watch")
def demo(suite):
    """The whole loop on a temporary database and the simulated model: days, a regression, the alert."""
    from importlib import resources
    from .demo import run_demo
    from .suites import load_suites
    with resources.as_file(resources.files("canary.prompts")) as prompts:
        suites, problems = load_suites(prompts)
    if suite not in suites:
        raise UsageError(f"unknown starter suite '{suite}' (known: {', '.join(sorted(suites))})")

    def show(day):
        [s] = day.watch.summaries
        a = day.watch.assessments[0] if day.watch.assessments else None
        band = f"mean {render.pct(a.quality.mean)}, floor {render.pct(a.quality.lower)}" \
            if a and a.quality.mean is not None else "baseline forming"
        extra = f" + confirmation run ({day.watch.confirmations[0].passed}/{day.watch.confirmations[0].answered})" \
            if day.watch.confirmations else ""
        render.console.print(f"{day.slot:%Y-%m-%d}  simulated wrong rate {day.wrong_rate:4.0%}  "
                             f"pass {render.pct(s.pass_rate):>6} ({s.passed}/{s.answered}){extra}  ({band})",
                             markup=False)
        for e in day.watch.events:
            render.console.print(f"  [bold red]alert {e.action}[/]: {e.model} · {e.suite} · {e.kind}")

    logging.getLogger("canary.alerts").setLevel(logging.ERROR)  # the demo prints the alerts itself
    render.console.print(f"canary demo: one simulated model on the '{suite}' suite, one scheduled run a day\n")
    _days, listed = run_demo(suites, suite=suite, on_day=show)
    render.console.print("\nWhat Slack would have received (no Slack configured, so it went to the log):")
    for alert in reversed(listed):
        for message in alert["messages"]:
            render.console.print(f"  {message['text']}", markup=False)
    render.console.print("\nNext: canary init, canary validate, canary run --sim; then point canary.yaml at real models.")


@main.command()
@config_option
@click.argument("a")
@click.argument("b")
@click.option("--suite", "suite_names", multiple=True, help="only this suite (repeatable)")
@click.option("--json", "as_json", is_flag=True)
@sim_db_option
def compare(config_path, sim, a, b, suite_names, as_json):
    """Two models side by side, with a significance test per suite."""
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    for name in suite_names or [None]:
        known_series(ws, store, [a, b], name)
    rows = reports.compare(store, ws.config, ws.suites, a, b, list(suite_names) or None)
    store.close()
    if as_json:
        render.print_json({"compare": rows})
    else:
        render.console.print(render.compare_table(a, b, rows))


@main.command()
@config_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@sim_db_option
def report(config_path, sim, out: Path):
    """Write an HTML page with a chart of every series, its band and its alerts."""
    from .report_html import render_report
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    page = render_report(store, ws.config, ws.suites, utcnow())
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    store.close()
    render.console.print(f"wrote {out}")


@main.command("export")
@config_option
@click.option("--model")
@click.option("--suite")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="only runs whose slot is at or after this date (UTC)")
@sim_db_option
def export_(config_path, sim, model, suite, since: datetime | None):
    """Every stored sample as JSONL on stdout, one object a line."""
    from .transfer import export_records, write_jsonl
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    write_jsonl(export_records(store, model=model, suite=suite, since=since), sys.stdout)
    store.close()


@main.command("import")
@config_option
@click.argument("file", type=click.File("r", encoding="utf-8"))
@sim_db_option
def import_(config_path, sim, file):
    """Load JSONL written by `canary export` (a sample already stored is skipped)."""
    from .transfer import import_jsonl
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    added, skipped = import_jsonl(store, file, name=getattr(file, "name", "<stdin>"))
    store.close()
    render.console.print(f"imported {added} samples, skipped {skipped} already stored")


@main.group()
def db():
    """Database maintenance."""


@db.command()
@config_option
@sim_db_option
def upgrade(config_path, sim):
    """Apply pending migrations (run and daemon also do this on start)."""
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    render.console.print(f"database at the current schema: {store.safe_url}")
    store.close()


@main.command()
@config_option
@click.option("--once", is_flag=True, help="run every due slot (the catch-up rule), then exit (for cron)")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human", show_default=True)
def daemon(config_path, once, log_format):
    """The scheduler in the foreground: cron per model, HTTP /healthz and /metrics."""
    from .daemon import run_daemon
    watches = run_daemon(config_path, once=once, log_format=log_format)
    sys.exit(exit_code([s for w in watches for s in w.summaries], any(w.regression for w in watches)))


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
    for problem in ws.problems:
        render.errors.print(problem, markup=False, highlight=False)
    try:
        serve(ws.suites, port, **{k: v for k, v in knobs.items() if v is not None})
    except OSError as exc:
        raise UsageError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror}") from None


if __name__ == "__main__":
    main()
