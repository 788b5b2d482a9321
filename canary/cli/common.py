"""What the commands share: exit codes, common options, and checks of names on the command line.

Exit codes: 0 done; 1 a regression alert was raised by this command (for `compare`: B is
worse than A); 2 bad config, bad suite or bad usage (a message, no traceback; `run` still
runs the suites that load, then exits 2); 3 no sample could be answered (service down);
4 `compare` is inconclusive (the data cannot tell yet); 5 the database failed (unreachable,
read-only, full: one line; the runs it interrupted are marked `interrupted` as far as the
database still takes writes).
"""
from __future__ import annotations

import click

from ..errors import UsageError

EXIT_OK, EXIT_ALERT, EXIT_USAGE, EXIT_DOWN, EXIT_INCONCLUSIVE, EXIT_DATABASE = 0, 1, 2, 3, 4, 5

config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                             help="canary.yaml (default: $CANARY_CONFIG, then ./canary.yaml)")
sim_db_option = click.option("--sim", is_flag=True,
                             help="the simulated model's database (what `run --sim` wrote), not the real one")
json_option = click.option("--json", "as_json", is_flag=True, help="print the result as JSON")


def fault_option(flag: str):
    """The simulator's hostile replies (sim_faults.py)."""
    from ..sim_faults import FAULTS
    return click.option(flag, type=click.Choice(FAULTS), default=None,
                        help="answer with this fault instead (see sim_faults.py)")


def known_series(ws, store, models: list[str], suite: str | None) -> None:
    """A model or suite named on the command line must be configured or have stored runs."""
    stored = {(r.model, r.suite) for r in store.latest_runs()}
    for model in models:
        if model not in {m.name for m in ws.config.models} and model not in {m for m, _ in stored}:
            raise UsageError(f"unknown model '{model}' (configured: {', '.join(m.name for m in ws.config.models)})")
    from ..fingerprint import SUITE as FINGERPRINT
    if suite == FINGERPRINT and all(m.fingerprint for m in ws.config.models if m.name in models):
        return
    if suite is not None and suite not in ws.suites and suite not in {s for _, s in stored}:
        raise UsageError(f"unknown suite '{suite}' (loaded: {', '.join(sorted(ws.suites))})")


def print_findings(ws) -> None:
    """The workspace's problems, then its warnings, one `path:line: message` a line on stderr."""
    from .. import render
    for line in ws.problems + ws.warnings:
        render.errors.print(line, markup=False, highlight=False)


def exit_code(summaries, regression: bool = False) -> int:
    """3 when no sample of the command could be answered, else 1 on a new regression alert."""
    if summaries and all(s.answered == 0 for s in summaries):
        return EXIT_DOWN
    return EXIT_ALERT if regression else EXIT_OK
