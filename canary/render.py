"""Tables and progress for people (rich); JSON for machines. No logic lives here."""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
errors = Console(stderr=True)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def money(x: float | None) -> str:
    return "-" if x is None else f"${x:.4f}"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} ms"


def print_json(data) -> None:
    console.print_json(json.dumps(data, default=str))


def run_table(summaries: Iterable) -> Table:
    table = Table(title="canary run")
    for col in ("model", "suite", "pass rate", "failed", "errors", "tokens in/out", "cost", "p50 latency"):
        table.add_column(col, justify="left" if col in ("model", "suite") else "right")
    for s in summaries:
        rate = f"{pct(s.pass_rate)} ({s.passed}/{s.answered})"
        errs = f"{s.errors} ({pct(s.error_rate)})" if s.errors else "0"
        table.add_row(s.model, s.suite, rate, str(s.failed), errs,
                      f"{s.input_tokens:,}/{s.output_tokens:,}", money(s.cost), ms(s.latency_p50_ms))
    return table


@contextmanager
def progress(total: int, enabled: bool = True):
    """A progress bar over `total` samples; yields a callback to call once per sample."""
    if not enabled:
        yield lambda *_: None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=errors, transient=True) as bar:
        task = bar.add_task("samples", total=total)
        yield lambda *_: bar.advance(task)
