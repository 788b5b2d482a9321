"""Setting a project up: init, validate, db upgrade, the demo and the simulated model."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from ..errors import ConfigError, UsageError
from .common import config_option, fault_option, print_findings, sim_db_option


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path):
    """Write a starter canary.yaml and the starter suites into DIRECTORY."""
    from .. import render
    from ..workspace import init_project
    for path in init_project(directory):
        render.console.print(f"wrote {path}")
    render.console.print("next: canary validate, then canary run --sim (no API key needed)")


@click.command()
@config_option
@click.option("--strict", is_flag=True, help="warnings (a turn without a reference, a slow regex) are errors too")
def validate(config_path, strict):
    """Check canary.yaml and every suite (each case's reference must pass its own asserts)."""
    from .. import render
    from ..workspace import open_workspace
    ws = open_workspace(config_path, thorough=True)
    if ws.problems or (strict and ws.warnings):
        raise ConfigError(ws.problems + ws.warnings)
    print_findings(ws)
    cases = sum(len(s.cases) for s in ws.suites.values())
    warned = f", {len(ws.warnings)} warning(s) above" if ws.warnings else ""
    render.console.print(f"ok: {len(ws.config.models)} models, {len(ws.suites)} suites, {cases} cases{warned} "
                         f"({ws.config.path})")


@click.group()
def db():
    """Database maintenance."""


@db.command()
@config_option
@sim_db_option
def upgrade(config_path, sim):
    """Apply pending migrations (run and daemon also do this on start)."""
    from .. import render
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim)
    store = ws.store()
    render.console.print(f"database at the current schema: {store.safe_url}")
    store.close()


@click.command()
@click.option("--suite", default="reasoning", show_default=True, help="starter suite to watch")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write the report page of the simulated days to this HTML file")
def demo(suite, report_path):
    """The whole loop on a temporary database and the simulated model: days, a regression, the alert."""
    from importlib import resources

    from .. import render
    from ..demo import run_demo
    from ..suites import load_suites
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
    _days, listed = run_demo(suites, suite=suite, on_day=show, report=report_path)
    render.console.print("\nWhat Slack would have received (no Slack configured, so it went to the log):")
    for alert in reversed(listed):
        for message in alert["messages"]:
            render.console.print(f"  {message['text']}", markup=False)
    if report_path:
        render.console.print(f"\nThe report of these days: {report_path}", markup=False)
    render.console.print("\nNext: canary init, canary validate, canary run --sim; then point canary.yaml at real models.")


@click.command()
@config_option
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True)
@click.option("--wrong-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--error-status", type=int, default=529, show_default=True)
@click.option("--flaky-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--latency", type=click.FloatRange(0, 60), default=0.0, show_default=True)
@fault_option("--fault")
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="share of each suite's cases that get the fault")
@click.option("--seed", type=int)
@click.option("--model-version", type=click.IntRange(1), help="fingerprint mode: 2, 3...: a swapped model")
def sim(config_path, port, **knobs):
    """Serve the simulated model on 127.0.0.1 (Anthropic and OpenAI wire formats); new or changed
    suite files are picked up as they appear."""
    from .. import render
    from ..sim import serve
    from ..sim_daemon import follow_suites
    from ..workspace import open_workspace
    ws = open_workspace(config_path)
    print_findings(ws)

    def say(line: str) -> None:
        render.errors.print(line, markup=False, highlight=False)
    try:
        serve(ws.suites, port, on_idle=follow_suites(ws.config.prompts_dir, say),
              **{k: v for k, v in knobs.items() if v is not None})
    except OSError as exc:
        raise UsageError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror}") from None
