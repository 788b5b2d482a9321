"""Tables and progress for people (rich); JSON for machines. No logic lives here."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .fmt import money, ms, pct

# piped output (CI logs, files) gets a width that fits the tables instead of 80 columns
console = Console(width=None if sys.stdout.isatty() else 130, soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


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


def _bar():
    """A transient progress bar on stderr (rich.progress is imported here: only `run` and a few
    long commands draw one)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=errors, transient=True)


@contextmanager
def progress(total: int, enabled: bool = True):
    """A progress bar over `total` samples; yields a callback to call once per sample."""
    if not enabled:
        yield lambda *_: None
        return
    with _bar() as bar:
        task = bar.add_task("samples", total=total)
        yield lambda *_: bar.advance(task)


@contextmanager
def phases():
    """Progress over successive phases: `start(description, total)`, then `advance()` per step."""
    with _bar() as bar:
        class Phases:
            task = None

            def start(self, description: str, total: int) -> None:
                if self.task is not None:
                    bar.update(self.task, visible=False)
                self.task = bar.add_task(description, total=total)

            def advance(self) -> None:
                bar.advance(self.task)
        yield Phases()


def _dist(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def fingerprint_probe_line(row: dict) -> str:
    alert = f"; alert {', '.join(row['alerts'])}" if row["alerts"] else ""
    return (f"{row['model']} · fingerprint: {row['status']}, {row['answered']} answered, {row['errors']} errors; "
            f"distance {_dist(row['distance'])} ({row['verdict'] or '-'}: {row['reason'] or '-'}){alert}")


def fingerprint_status(d: dict) -> None:
    """`canary fingerprint status` for one model."""
    fp = d["fingerprint"]
    if fp is None:
        console.print(f"{d['model']}: no fingerprint yet (run `canary fingerprint init --model {d['model']}`)",
                      markup=False)
        return
    temp = "the API's default" if fp["temperature"] is None else f"{fp['temperature']:g}"
    console.print(f"{d['model']}: fingerprint {fp['version']} ({fp['origin']}, referenced "
                  f"{_when(fp['referenced_at'])} UTC): {len(fp['inputs'])} border inputs "
                  f"({fp['varying_inputs']} varying in their reference; {fp['border']} found among "
                  f"{fp['candidates']} candidates), temperature {temp}, logprobs {'yes' if fp['logprobs'] else 'no'}, "
                  f"{fp['samples_per_probe']} calls a probe", markup=False)
    console.print("inputs: " + ", ".join(repr(p) for p in fp["inputs"]), markup=False)
    alert = d["alert"]
    console.print(f"alert: model_changed open since {_when(alert['opened_at'])}: {alert['reason']}" if alert
                  else "alert: none", markup=False)
    console.print(history_table(f"{d['model']} · fingerprint: last probes", d["probes"]))


def _fingerprint_history(title: str, points: list[dict]) -> Table:
    table = Table(title=title)
    for col in ("slot (UTC)", "distance", "usual", "band", "logprob change", "verdict", "answered", "errors"):
        table.add_column(col)
    for p in points:
        verdict = {"deviating": "[red]deviating[/]", "ok": "ok", "no_verdict": "-"}[p["verdict"]]
        band = "-" if p["upper"] is None else f"{max(p['lower'], 0):.3f} to {p['upper']:.3f}"
        table.add_row(_when(p["slot"]), _dist(p["distance"]), _dist(p["mean"]), band, _dist(p["logprob"]),
                      verdict + (" (alert)" if p["in_alert"] else ""), str(p["answered"]), str(p["errors"]))
    return table


def _when(dt) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt else "-"


def history_table(title: str, points: list[dict]) -> Table:
    if points and "distance" in points[0]:  # the fingerprint series
        return _fingerprint_history(title, points)
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
        mean, floor = pct(r["mean"]), pct(r["lower"])
        if "distance" in r:  # the fingerprint series: a distance and the band's upper edge
            rate = "no fingerprint yet" if not r["fingerprinted"] else f"distance {_dist(r['distance'])}"
            mean, floor = _dist(r["mean"]), "-" if r["upper"] is None else f"above {r['upper']:.3f}"
        last = _when(r["last_run"]) + ("" if r["last_status"] in (None, "complete") else f" ({r['last_status']})")
        state = "[red]" + ", ".join(r["alerts"]) + "[/]" if r["alerts"] else "ok"
        catches = ("-" if not r.get("catches_simulated") else "none" if r["catches"] is None
                   else f"{r['catches']:g} pts")
        table.add_row(r["model"], r["suite"], last, rate, mean, floor, catches, state, _when(r["next_run"]))
    return table


def alerts_table(rows: list[dict]) -> Table:
    table = Table(title="canary alerts")
    for col in ("id", "model", "suite", "kind", "state", "opened (UTC)", "closed (UTC)", "delivery"):
        table.add_column(col)
    for r in rows:
        delivery = "; ".join(f"{m['event']}: {m['state']}" + (f" ({m['attempts']} tries)" if m["state"] == "pending" else
                                                              f" ({escape(m['last_error'] or '')})" if m["state"] == "failed" else "")
                             for m in r["messages"]) or "-"
        closed = _when(r["closed_at"]) + (f" ({r['closed_by']})" if r["closed_by"] else "")
        table.add_row(str(r["id"]), r["model"], r["suite"], r["kind"], r["state"], _when(r["opened_at"]), closed, delivery)
    return table


def compare_tables(report) -> list:
    """A `comparison.Report` for people: per suite (then every suite pooled) both models side
    by side, the difference and its verdict, the regressed cases with their failed checks,
    and the plain line."""
    from rich.markup import escape

    from .comparison import sentence, summary
    out: list = []
    blocks = [(r.comparison, r.runs_a, r.runs_b, r.examples) for r in report.suites]
    if report.overall is not None:
        blocks.append((report.overall, sum(r.runs_a for r in report.suites), sum(r.runs_b for r in report.suites), None))
    for c, runs_a, runs_b, examples in blocks:
        table = Table(title=f"{escape(c.name)}: {c.cases} cases paired, {c.samples_per_case:.1f} samples per case "
                            "and model", title_justify="left")
        for col in ("model", "pass rate", "95% CI", "errors", "out tokens/pass", "cost/pass", "p50 latency", "runs"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for m, runs in ((c.a, runs_a), (c.b, runs_b)):
            ci = "-" if m.low is None else f"{pct(m.low)} to {pct(m.high)}"
            errs = f"{m.errors} ({pct(m.error_share)})" if m.errors else "0"
            tokens = "-" if m.tokens_per_pass is None else f"{m.tokens_per_pass:,.0f}"
            table.add_row(m.name, f"{pct(m.pass_rate)} ({m.passed}/{m.answered})", ci, errs, tokens,
                          money(m.cost_per_pass), ms(m.latency_p50_ms), str(runs))
        out.append(table)
        if c.difference is not None:
            verdict = {"worse": "[red]worse[/]", "better": "[green]better[/]", "no_worse": "[green]no_worse[/]",
                       "inconclusive": "[yellow]inconclusive[/]"}[c.verdict]
            out.append(f"difference {c.b.name} - {c.a.name}: {100 * c.difference:+.1f} pts "
                       f"(95% CI {100 * c.low:+.1f} to {100 * c.high:+.1f}), p = {c.p_value:.3g}; "
                       f"margin {100 * c.margin:g} pts: {verdict}"
                       + (" (the worst suite's)" if examples is None else ""))
        if examples is None:
            continue
        for title, diffs, bad in (("regressed", c.regressed, c.b.name), ("improved", c.improved, c.a.name)):
            if diffs:
                out.append(f"{title} on {escape(c.name)} ({len(diffs)}; failed checks of {bad}):")
            for d in diffs:
                how = "every sample" if d.flipped else f"Fisher p = {d.p_value:.3g}"
                checks = escape("; ".join(examples.get(d.case, {}).get("failed_checks", [])[:3]))
                out.append(f"  {escape(d.case)}: {c.a.name} {d.a_passed}/{d.a_answered}, {c.b.name} "
                           f"{d.b_passed}/{d.b_answered} ({how})" + (f": {checks}" if checks else ""))
        if c.unpaired:
            out.append(f"left out (not answered by both): {escape(', '.join(c.unpaired))}")
        out.append(f"[bold]{escape(sentence(c, report.a, report.b))}[/]\n")
    for note in report.notes:
        out.append(f"note: {escape(note)}")
    if report.suites:
        out.append(f"\n[bold]{escape(summary(report))}[/]")
    return out


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
