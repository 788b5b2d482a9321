"""Tables and progress for people (rich); JSON for machines. No logic lives here."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterable

from rich.console import Console
from rich.markup import escape
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


def run_table(summaries: Iterable, confirmations: Iterable = ()) -> Table:
    """One row per run; a confirmation run right under the run it confirms, labelled as such."""
    table = Table(title="canary run")
    for col in ("model", "suite", "pass rate", "failed", "errors", "tokens in/out", "cost", "p50 latency"):
        table.add_column(col, justify="left" if col in ("model", "suite") else "right")
    confirming = {(c.model, c.suite): c for c in confirmations}
    rows = []
    for s in summaries:
        rows.append((s.model, s.suite, s))
        if (c := confirming.pop((s.model, s.suite), None)) is not None:
            rows.append(("", "↳ confirmation run", c))
    rows += [(c.model, f"{c.suite} (confirmation run)", c) for c in confirming.values()]
    for model, suite, r in rows:
        errs = f"{r.errors} ({pct(r.error_rate)})" if r.errors else "0"
        table.add_row(model, suite, f"{pct(r.pass_rate)} ({r.passed}/{r.answered})", str(r.failed), errs,
                      f"{r.input_tokens:,}/{r.output_tokens:,}", money(r.cost), ms(r.latency_p50_ms))
    return table


def print_failures(f, request_ids: int = 3) -> None:
    """One series' failing cases (a `failures.SeriesFailures`): a heading, then a few lines per case."""
    if len(f.slots) > 1:
        what = f"{len(f.slots)} runs from {_when(f.slots[0])} to {_when(f.slots[-1])} UTC, pooled"
    else:
        what = f"run of {_when(f.slots[0])} UTC" + (", pooled with its confirmation run" if f.confirmed else "")
    rate = f"{pct(f.passed / f.answered if f.answered else None)} ({f.passed}/{f.answered} passed)"
    console.print(f"\n[bold]{escape(f.model)} · {escape(f.suite)}[/]: {what}: {rate}, {f.errors} errors; "
                  f"baseline {f.baseline_runs} runs" + (f" ({escape(f.note)})" if f.note else ""), highlight=False)
    if not f.cases:
        console.print("  no failing case")
    for c in f.cases:
        label = "[bold red]newly failing[/]" if c.standing == "newly" else c.as_dict()["standing_label"]
        errs = f", {c.errors} errors" if c.errors else ""
        console.print(f"\n  {label}  [bold]{escape(c.case)}[/]  {c.failed}/{c.answered} failed{errs}, "
                      f"{pct(c.baseline_rate)} passed in the baseline", highlight=False)
        console.print(f"     {escape(c.check)}", highlight=False)
        console.print(f"     [dim]answer: {escape(c.answer)}[/]", highlight=False)
        if c.request_ids:
            more = len(c.request_ids) - request_ids
            console.print(f"     [dim]request ids: {escape(', '.join(c.request_ids[:request_ids]))}"
                          + (f" (+{more} in --json)" if more > 0 else "") + "[/]", highlight=False)


def print_newly_failing(f, more: str, limit: int = 8) -> None:
    """Under `canary run`'s table: a breached series and its newly failing cases."""
    console.print(f"\n[bold]{escape(f.model)} · {escape(f.suite)}[/] breached: "
                  f"{pct(f.passed / f.answered if f.answered else None)} ({f.passed}/{f.answered})"
                  + (", confirmed by a second run" if f.confirmed else ""))
    newly = f.newly
    for c in newly[:limit]:
        console.print(f"  newly failing [bold]{escape(c.case)}[/] {c.failed}/{c.answered} failed "
                      f"(baseline {pct(c.baseline_rate)}): {escape(c.check)}\n    [dim]answer: {escape(c.answer)}[/]")
    rest = len(f.cases) - min(len(newly), limit)
    if not newly:
        console.print(f"  no newly failing case; {len(f.cases)} failing case(s) failed in the baseline too")
    elif rest:
        console.print(f"  and {rest} more failing case(s)")
    console.print(f"  more: {escape(more)}", highlight=False)


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
        tokens = "-" if p["output_tokens_per_answer"] is None else f"{p['output_tokens_per_answer']:.0f}"
        table.add_row(_when(p["slot"]), f"{pct(p['pass_rate'])} ({p['passed']}/{p['answered']})", str(p["errors"]),
                      pct(p["mean"]), pct(p["lower"]), verdict, tokens, ms(p["latency_p50_ms"]))
    return table


def status_table(rows: list[dict]) -> Table:
    table = Table(title="canary status")
    for col in ("model", "suite", "last run (UTC)", "pass rate", "mean", "band floor", "alerts", "next run (UTC)"):
        table.add_column(col)
    for r in rows:
        rate = "-" if r["pass_rate"] is None else f"{pct(r['pass_rate'])} ({r['passed']}/{r['answered']})"
        last = _when(r["last_run"]) + ("" if r["last_status"] in (None, "complete") else f" ({r['last_status']})")
        state = "[red]" + ", ".join(r["alerts"]) + "[/]" if r["alerts"] else "ok"
        table.add_row(r["model"], r["suite"], last, rate, pct(r["mean"]), pct(r["lower"]), state, _when(r["next_run"]))
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
