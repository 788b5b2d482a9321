"""`canary compare A B`: gather both models' samples, judge them suite by suite, say it plainly.

Two ways to get the samples: the stored runs of both models since a date (the current suite
version only; scheduled, manual and earlier compare runs; never confirmation runs, which
exist only because their day looked bad), or fresh runs made now for both models at once,
stored as runs of kind `compare` (no series, no baseline, no alert). Either way every case
is paired across runs and days, and canary.compare does the statistics.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from . import compare
from .failures import failed_checks
from .config import Config, ModelConfig, parse_duration
from .errors import UsageError
from .runner import Control, Job, ProviderFactory, RunSummary, make_provider, run_jobs, utcnow
from .store import Store
from .suites import Suite

STORED_KINDS = ("scheduled", "manual", "compare")
DEFAULT_SINCE = timedelta(days=7)


def parse_since(text: str | None, now: datetime) -> datetime:
    """`3d`, `12h`, `2w` (ago), or a date / time in UTC (`2026-05-28`, `2026-05-28T06:00`)."""
    if text is None:
        return now - DEFAULT_SINCE
    value = text.strip()
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*w", value):
        return now - timedelta(weeks=float(m.group(1)))
    if re.fullmatch(r"\d+(?:\.\d+)?\s*[smhd]", value):
        return now - parse_duration(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since '{text}' is neither a duration (3d, 12h, 2w) nor a date (2026-05-28)") from None
    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


@dataclass
class SuiteResult:
    comparison: compare.Comparison
    suite_version: str
    runs_a: int
    runs_b: int
    examples: dict[str, dict] = field(default_factory=dict)  # case -> failed checks and both answers


@dataclass
class Report:
    a: str
    b: str
    mode: str  # stored | fresh
    since: datetime | None
    margin: float
    suites: list[SuiteResult]
    overall: compare.Comparison | None
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return compare.worst([s.comparison.verdict for s in self.suites])

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "mode": self.mode, "since": self.since, "margin": self.margin,
                "level": compare.LEVEL, "verdict": self.verdict, "summary": summary(self),
                "suites": [comparison_dict(s.comparison, self.a, self.b, s) for s in self.suites],
                "overall": comparison_dict(self.overall, self.a, self.b) if self.overall else None,
                "notes": self.notes}


def select_suites(suites: dict[str, Suite], names: list[str], default: list[str]) -> list[Suite]:
    for name in names:
        if name not in suites:
            raise UsageError(f"unknown suite '{name}' (loaded: {', '.join(sorted(suites)) or 'none'})")
    return [suites[n] for n in (names or default) if n in suites]


def price_of(config: Config, model: str) -> compare.Price | None:
    m = next((m for m in config.models if m.name == model), None)
    return compare.Price(m.price.input, m.price.output) if m and m.price else None


def judge(store: Store, config: Config, a: str, b: str, runs: dict[tuple[str, str], list[int]],
          suites: list[Suite], *, margin: float, mode: str, since: datetime | None) -> Report:
    """Compare A and B on each suite over the given runs ((model, suite) -> run ids)."""
    price_a, price_b = price_of(config, a), price_of(config, b)
    results, pooled_a, pooled_b, notes = [], {}, {}, []
    for suite in suites:
        ids_a, ids_b = runs.get((a, suite.name), []), runs.get((b, suite.name), [])
        known = {c.id for c in suite.cases}
        usage_a = {c: u for c, u in store.case_usage(ids_a).items() if c in known}
        usage_b = {c: u for c, u in store.case_usage(ids_b).items() if c in known}
        for model, ids in ((a, ids_a), (b, ids_b)):
            if not ids:
                notes.append(f"{suite.name}: no {'stored ' if mode == 'stored' else ''}runs of {model} "
                             f"on this suite version{' since ' + since.isoformat(' ', 'minutes') if since else ''}")
        c = compare.compare(suite.name, a, usage_a, b, usage_b, margin=margin, price_a=price_a, price_b=price_b)
        result = SuiteResult(c, suite.version, len(ids_a), len(ids_b))
        result.examples = examples(store, ids_a, ids_b, c)
        results.append(result)
        pooled_a.update({f"{suite.name}/{k}": v for k, v in usage_a.items()})
        pooled_b.update({f"{suite.name}/{k}": v for k, v in usage_b.items()})
    overall = None
    if len(results) > 1:
        overall = compare.compare("every suite", a, pooled_a, b, pooled_b, margin=margin, price_a=price_a,
                                  price_b=price_b)
        overall.verdict = compare.worst([r.comparison.verdict for r in results])
        needed = [r.comparison.more_samples_per_case for r in results if r.comparison.verdict == "inconclusive"]
        overall.more_samples_per_case = None if None in needed or not needed else max(needed)
    return Report(a, b, mode, since, margin, results, overall, notes)


def examples(store: Store, ids_a: list[int], ids_b: list[int], c: compare.Comparison) -> dict[str, dict]:
    """For each regressed case: the failed checks and both answers (A's last pass, B's last
    failure); for each improved case the other way round."""
    out: dict[str, dict] = {}
    for diffs, good_ids, bad_ids, bad_is in ((c.regressed, ids_a, ids_b, "b"), (c.improved, ids_b, ids_a, "a")):
        cases = [d.case for d in diffs]
        good = store.latest_samples({case: good_ids for case in cases}, "passed")
        bad = store.latest_samples({case: bad_ids for case in cases}, "failed")
        for case in cases:
            failing = bad.get(case)
            answers = {"a": good.get(case), "b": failing} if bad_is == "b" else {"a": failing, "b": good.get(case)}
            out[case] = {"failed_checks": failed_checks(failing.turns) if failing else [],
                         **{side: answer(row) for side, row in answers.items()}}
    return out


def answer(row) -> list[dict] | None:
    """A sample's conversation as a person reads it: per turn the user text, the reply, tool calls."""
    if row is None:
        return None
    return [{"user": t.get("user", ""), "text": t.get("text", ""), "tool_calls": t.get("tool_calls", [])}
            for t in row.turns]


# --- the two ways to get samples ---------------------------------------------------------------

def stored_runs(store: Store, a: str, b: str, suites: list[Suite], since: datetime) -> dict[tuple[str, str], list[int]]:
    """Each model's finished runs of each suite's current version since a time."""
    return {(model, s.name): store.run_ids(model, s.name, suite_version=s.version, since=since, kinds=STORED_KINDS)
            for model in (a, b) for s in suites}


def fresh_jobs(a: ModelConfig, b: ModelConfig, suites: list[Suite], repeat: int | None, slot: datetime) -> list[Job]:
    """Both models on every suite, the same number of samples per case (the larger default)."""
    jobs = []
    for suite in suites:
        n = repeat or max(m.repeat or suite.repeat for m in (a, b))
        jobs += [Job(m, suite, n, slot, "compare") for m in (a, b)]
    return jobs


async def fresh_runs(store: Store, jobs: list[Job], *, clock: Callable[[], datetime] = utcnow,
                     control: Control | None = None, provider_factory: ProviderFactory = make_provider,
                     on_sample=None) -> tuple[dict[tuple[str, str], list[int]], list[RunSummary]]:
    """Run the jobs now (both models at once, each within its own concurrency and retries)."""
    summaries = await run_jobs(store, jobs, clock=clock, control=control, provider_factory=provider_factory,
                               on_sample=on_sample)
    return {(s.model, s.suite): [s.run_id] for s in summaries}, summaries


# --- in words -------------------------------------------------------------------------------------

def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def cost_clause(c: compare.Comparison) -> str | None:
    ca, cb = c.a.cost_per_pass, c.b.cost_per_pass
    if ca is None or cb is None or ca == 0:
        return None
    change = cb / ca - 1
    if abs(change) < 0.005:
        return "costs the same per correct answer"
    return f"costs {100 * abs(change):.0f}% {'less' if change < 0 else 'more'} per correct answer"


def sentence(c: compare.Comparison, a: str, b: str) -> str:
    """One plain line: the verdict, the difference with its interval, the cost per correct answer."""
    if c.difference is None:
        return f"{b} and {a} have no case both answered on {c.name}: nothing to compare."
    diff = f"{_pts(c.difference)} pts, 95% CI {_pts(c.low)} to {_pts(c.high)}"
    cost = cost_clause(c)
    margin = f"{100 * c.margin:g}-point margin"
    if c.verdict == "inconclusive":
        if c.more_samples_per_case is None:
            then = "more samples of these cases would not settle it at the observed rates"
        else:
            n = c.more_samples_per_case
            then = (f"about {n} more sample{'s' if n != 1 else ''} per case of each model would settle it "
                    f"at the observed rates")
        line = f"It cannot be told yet whether {b} is worse than {a} on {c.name} ({diff}; {margin}): {then}."
        return line + (f" {b} {cost}." if cost else "")
    if c.verdict == "better":
        line = f"{b} is better than {a} on {c.name} ({diff})"
    elif c.verdict == "no_worse":
        slightly = f", slightly worse but within the {margin}" if c.high < 0 else ""
        line = f"{b} is no worse than {a} on {c.name} ({diff}{slightly})"
    else:
        n = len(c.regressed)
        line = f"{b} is worse than {a} on {c.name} ({diff}; {n} case{'s' if n != 1 else ''} regressed)"
    return line + (f" and {cost}." if cost else ".")


def summary(report: Report) -> str:
    """The overall line: the worst suite's verdict decides."""
    verdict = report.verdict
    if not report.suites:
        return f"No suite to compare {report.b} with {report.a} on."
    worst = [s.comparison.name for s in report.suites if s.comparison.verdict == verdict]
    words = {"better": "better than", "no_worse": "no worse than", "worse": "worse than",
             "inconclusive": "not yet distinguishable from"}[verdict]
    scope = "every suite" if len(worst) == len(report.suites) else ", ".join(worst)
    return f"Overall: {report.b} is {words} {report.a} ({verdict}, decided by {scope})."


def model_dict(m: compare.ModelStats, runs: int | None = None) -> dict:
    out = {"name": m.name, "pass_rate": m.pass_rate, "pass_rate_low": m.low, "pass_rate_high": m.high,
           "passed": m.passed, "answered": m.answered, "errors": m.errors, "error_share": m.error_share,
           "tokens_per_pass": m.tokens_per_pass, "cost_per_pass": m.cost_per_pass,
           "latency_p50_ms": m.latency_p50_ms}
    return out if runs is None else {**out, "runs": runs}


def comparison_dict(c: compare.Comparison, a: str, b: str, suite: SuiteResult | None = None) -> dict:
    examples_ = suite.examples if suite else {}

    def case(d: compare.CaseDiff) -> dict:
        return {**d.__dict__, **examples_.get(d.case, {})}

    return {
        "suite": c.name, "suite_version": suite.suite_version if suite else None, "verdict": c.verdict,
        "summary": sentence(c, a, b), "cases": c.cases, "unpaired": c.unpaired,
        "difference": c.difference, "difference_low": c.low, "difference_high": c.high, "p_value": c.p_value,
        "margin": c.margin, "samples_per_case": c.samples_per_case, "more_samples_per_case": c.more_samples_per_case,
        "a": model_dict(c.a, suite.runs_a if suite else None), "b": model_dict(c.b, suite.runs_b if suite else None),
        "regressed": [case(d) for d in c.regressed], "improved": [case(d) for d in c.improved],
    }
