"""Tables and progress for people (rich); JSON for machines. No logic lives here."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# piped output (CI logs, files) gets a width that fits the tables instead of 80 columns
console = Console(width=None if sys.stdout.isatty() else 130, soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


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


def _when(dt) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt else "-"


def history_table(title: str, points: list[dict]) -> Table:
    table = Table(title=title)
    for col in ("slot (UTC)", "pass rate", "errors", "mean", "band floor", "verdict", "out tokens/answer", "p50 latency"):
        table.add_column(col, justify="left" if col == "slot" else "right")
    for p in points:
        verdict = {"breach": "[red]breach[/]", "ok": "ok", "no_verdict": "-"}[p["verdict"]]
        if p["verdict"] == "breach" and p.get("check") == "reference":
            verdict = "[red]breach (below the reference)[/]"
        tokens = "-" if p["output_tokens_per_answer"] is None else f"{p['output_tokens_per_answer']:.0f}"
        table.add_row(_when(p["slot"]), f"{pct(p['pass_rate'])} ({p['passed']}/{p['answered']})", str(p["errors"]),
                      pct(p["mean"]), pct(p["lower"]), verdict, tokens, ms(p["latency_p50_ms"]))
    return table


def status_table(rows: list[dict]) -> Table:
    table = Table(title="canary status")
    for col in ("model", "suite", "last run (UTC)", "pass rate", "mean", "band floor", "drop caught in 3 runs", "alerts",
                "next run (UTC)"):
        table.add_column(col)
    for r in rows:
        rate = "-" if r["pass_rate"] is None else f"{pct(r['pass_rate'])} ({r['passed']}/{r['answered']})"
        last = _when(r["last_run"]) + ("" if r["last_status"] in (None, "complete") else f" ({r['last_status']})")
        state = "[red]" + ", ".join(r["alerts"]) + "[/]" if r["alerts"] else "ok"
        catches = ("-" if not r["catches_simulated"] else "none" if r["catches"] is None
                   else f"{r['catches']:g} pts")
        table.add_row(r["model"], r["suite"], last, rate, pct(r["mean"]), pct(r["lower"]), catches, state,
                      _when(r["next_run"]))
    return table


def alerts_table(rows: list[dict]) -> Table:
    table = Table(title="canary alerts")
    for col in ("id", "model", "suite", "kind", "state", "opened (UTC)", "closed (UTC)", "delivery"):
        table.add_column(col)
    for r in rows:
        delivery = "; ".join(f"{m['event']}: {m['state']}" + (f" ({m['attempts']} tries)" if m["state"] == "pending" else "")
                             for m in r["messages"]) or "-"
        closed = _when(r["closed_at"]) + (f" ({r['closed_by']})" if r["closed_by"] else "")
        table.add_row(str(r["id"]), r["model"], r["suite"], r["kind"], r["state"], _when(r["opened_at"]), closed, delivery)
    return table


def compare_table(a: str, b: str, rows: list[dict]) -> Table:
    table = Table(title=f"{a} vs {b} (pooled recent runs, Fisher's exact test)")
    for col in ("suite", a, b, "difference", "p-value", ""):
        table.add_column(col)
    for r in rows:
        diff = "-" if r["rate_a"] is None or r["rate_b"] is None else f"{100 * (r['rate_a'] - r['rate_b']):+.1f} pts"
        p = "-" if r["p_value"] is None else f"{r['p_value']:.3g}"
        table.add_row(r["suite"], f"{pct(r['rate_a'])} ({r['passed_a']}/{r['answered_a']})",
                      f"{pct(r['rate_b'])} ({r['passed_b']}/{r['answered_b']})", diff, p,
                      "significant" if r["significant"] else "")
    return table


def calibration_cases(cal) -> Table:
    table = Table(title=f"{cal.model} · {cal.suite}: pass rate per case, {cal.source}")
    for col in ("case", "passed", "rate", "signal"):
        table.add_column(col, justify="right" if col in ("passed", "rate") else "left")
    for c in cal.cases:
        table.add_row(c.case, f"{c.passed}/{c.answered}", pct(c.rate), c.note)
    return table


def calibration_power(cal, configured: int) -> Table:
    """The simulated power table, with the recommendation and the configured repeat's smallest drop."""
    table = Table(title=f"{cal.model} · {cal.suite}: simulated from these rates with the shipped detector "
                        f"({cal.series_years} series-years and {cal.trials} regressions per repeat)")
    for col in ("repeat", "false alarms a year", "team of 15", "3 cases break: caught in 3 runs",
                "-10 pts: caught in 3 runs", "cost a day", "tokens a day"):
        table.add_column(col, justify="right")
    for r in cal.table:
        broken = "- (< 3 reliable)" if r.break_caught is None else pct(r.break_caught)
        mark = " (recommended)" if r.repeat == cal.recommended else ""
        table.add_row(f"{r.repeat}{mark}", f"{r.false_alarms:.2f} ± {r.false_alarms_se:.2f}", f"{r.team:.1f}",
                      broken, f"{pct(r.drop_caught)} ± {100 * r.caught_se:.1f}", money(r.cost_per_day),
                      f"{r.tokens_per_day:,}")
    targets = "at most 0.15 false alarms a series-year, 95% caught within 3 runs"
    table.caption = "no case was answered: nothing to simulate"
    if cal.meets_targets:
        table.caption = f"recommended repeat: {cal.recommended} (the smallest that meets the targets: {targets})"
    elif cal.recommended is not None:
        table.caption = (f"no repeat up to 5 meets the targets ({targets}); {cal.recommended} comes closest: "
                         "more cases, or more reliable ones, are what this suite needs")
    if cal.min_drop is not None:
        table.caption += f"; at the configured repeat {configured} it catches a {cal.min_drop:g}-point drop in 3 runs"
    return table
