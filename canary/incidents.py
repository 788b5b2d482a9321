"""What the alerts of one model in one run say: one Slack message per action. No I/O here.

The alerts a model opens in one run (`canary run`, a daemon slot) make one message
(`opened`), a section per suite: its k/n, expected rate and band floor as `canary status`
shows them (and, for a breach pooled with its confirmation run, both runs' k/n), the top
newly failing cases, the HTTP statuses and request ids of errored samples. The alerts that
recover together make one message (`recovered`). Each suite links to its section of the
report when `alerts.report_url` is set; the commands to see more say `--sim` when the runs
are the simulated model's (canary/messages.py `Links`). Every inserted value goes through
`messages.esc`.
"""
from __future__ import annotations

from typing import Protocol

from .fmt import pct
from .messages import KIND_TITLES, Links, context, esc, section, title

MAX_SECTIONS = 40  # Slack takes 50 blocks a message: title, this many suites, the rest counted, context
SECTION_CHARS = 2900  # Slack takes 3000 characters a section
CASES_ONE_SUITE, CASES_PER_SUITE = 5, 3  # failing cases shown: alone, or beside other suites


class Event(Protocol):
    """One alert event a message carries (alerts.Change)."""

    suite: str
    kind: str
    details: dict


def opened(model: str, events: list[Event], links: Links = Links()) -> dict:
    """The message for the alerts one model opened in one run: a section per suite."""
    suites = _by_suite(events)
    cases = CASES_ONE_SUITE if len(suites) == 1 else CASES_PER_SUITE
    parts = [[f"{links.series(model, suite)} · {', '.join(f'*{title(e.kind)}*' for e in group)}"]
             + [line for e in group for line in _body(e, cases)] for suite, group in suites.items()]
    return _message(model, events, suites, parts, links, recovery=False)


def recovered(model: str, events: list[Event], links: Links = Links()) -> dict:
    """The one message for the alerts of one model that recovered together."""
    suites = _by_suite(events)
    parts = [[f"{links.series(model, suite)} · {title(e.kind)}: back to normal: {esc(e.details.get('reason', ''))}"]
             for suite, group in suites.items() for e in group]
    return _message(model, events, suites, parts, links, recovery=True)


def _message(model: str, events: list[Event], suites: dict[str, list[Event]], parts: list[list[str]], links: Links,
             recovery: bool) -> dict:
    """Title and fallback text (one alert: its suite and reason; several: each suite's kinds),
    the suites' sections, the commands to see more."""
    m = esc(model)
    if len(events) == 1:
        [e] = events
        what, reason = title(e.kind), esc(e.details.get("reason", ""))
        head = f"*{m}* · *{esc(e.suite)}*: {f'recovered ({what})' if recovery else what}"
        text = f"canary: {m} · {esc(e.suite)}: {'recovered' if recovery else what}: {reason}"
    else:
        n = len(suites)
        what = "recovered" if recovery else f"{n} suite{'s' * (n > 1)} in breach"
        head = f"*{m}*: {what}: {_summary(suites)}"
        text = f"canary: {m}: {'recovered: ' * recovery}{_summary(suites, bold=False)}"
    icon = ":white_check_mark:" if recovery else ":rotating_light:"
    return {"text": text, "blocks": _blocks(f"{icon} canary: {head}", parts,
                                            _more(model, suites, links, failures=not recovery))}


def _by_suite(events: list[Event]) -> dict[str, list[Event]]:
    order = list(KIND_TITLES)
    out: dict[str, list[Event]] = {}
    for e in sorted(events, key=lambda e: (e.suite, order.index(e.kind) if e.kind in order else len(order), e.kind)):
        out.setdefault(e.suite, []).append(e)
    return out


def _summary(suites: dict[str, list[Event]], bold: bool = True) -> str:
    star = "*" if bold else ""
    return "; ".join(f"{star}{esc(s)}{star}: {' and '.join(title(e.kind) for e in group)}"
                     for s, group in suites.items())


def _blocks(head: str, parts: list[list[str]], more: str) -> list[dict]:
    """The title, a section per suite (at most MAX_SECTIONS, each cut at a line within Slack's
    limit), then the commands to see more."""
    blocks = [section(head)]
    for lines in parts[:MAX_SECTIONS]:
        kept: list[str] = []
        for line in lines:
            if sum(len(k) + 1 for k in kept) + len(line) > SECTION_CHARS:
                kept.append("…")
                break
            kept.append(line)
        blocks.append(section("\n".join(kept)))
    if len(parts) > MAX_SECTIONS:
        blocks.append(section(f"and {len(parts) - MAX_SECTIONS} more: `canary status`"))
    return blocks + [context(more)]


def _more(model: str, suites: dict[str, list[Event]], links: Links, failures: bool) -> str:
    """The commands to see more (and the report), for one suite or for the model's; `failures`:
    the failing cases too, when a pass rate dropped."""
    m = esc(model)
    quality = failures and any(e.kind == "quality" for group in suites.values() for e in group)
    if len(suites) == 1:
        s = esc(next(iter(suites)))
        commands = ([links.command(f"canary failures --model {m} --suite {s}")] if quality else []) + [
            links.command(f"canary history --model {m} --suite {s}")]
    else:
        commands = ([links.command(f"canary failures --model {m}")] if quality else []) + [
            links.command("canary status")]
    report = f" · <{esc(links.report_url)}|the report>" if links.report_url else ""
    return f"More: {' · '.join(commands)}{report}"


def _body(e: Event, cases: int) -> list[str]:
    """The lines of one alert in its suite's section."""
    d = e.details
    if e.kind == "quality":
        return _quality(d, cases)
    if e.kind == "availability":
        return _availability(d)
    if e.kind == "model_changed":
        return [f"The API reports `{esc(d['now'])}`, the baseline ran on `{esc(d['before'])}`"]
    return [esc(d.get("reason", ""))]


def _quality(d: dict, cases: int) -> list[str]:
    """k/n, the expected rate and the band floor as `canary status` shows them (pooled with the
    confirmation run, which the message says); for a slow slide, how far below the reference;
    then the failing cases, the news first, the always-failing only counted."""
    rate = f"{pct(d['rate'])} ({d['passed']}/{d['answered']})"
    band = f"expected {pct(d['mean'])}, band floor {pct(d['lower'])} ({esc(d['method'])})"
    slide = d.get("slide")
    if slide:
        lines = [f"*{slide['points']:.0f} points below the reference of {esc(slide['reference_date'])}* "
                 f"(rolling window absorbed it): the last {slide['runs']} runs pass {pct(slide['rate'])}, the "
                 f"reference expects {pct(slide['expected'])} of the same cases (alert below {pct(slide['lower'])}). "
                 "`canary ack` accepts the new level.",
                 f"Pass rate today {rate}; rolling baseline: {band}, not in breach"]
    else:
        lines = [f"Pass rate {rate}, {band}"]
    runs = d.get("runs") or []
    if len(runs) > 1:
        (k, n), rest = runs[0], ", ".join(f"{k}/{n}" for k, n in runs[1:])
        lines.append(f"Pooled: this run {k}/{n} and its confirmation run {rest}, judged together, so k/n and the "
                     "floor are both runs' (as `canary status` shows them), not the first run's")
    if d.get("errors"):
        lines.append(f"Errors: {d['errors']} samples (not counted as failures)")
    failing = d.get("failing", [])
    if failing or d.get("always_failing"):
        lines.append("*Failing cases, newly failing first*")
    for f in failing[:cases]:
        label = {"newly_failing": "newly failing", "flaky": "flaky", "no_baseline": "no baseline yet"}.get(
            f["kind"], "failing")
        lines.append(f"• `{esc(f['case'])}` ({label}: {f['passed']}/{f['answered']} passed today, "
                     f"{f['base_passed']}/{f['base_answered']} before): {esc(f['explanation'] or '-')}")
    more = d.get("more_failing", 0) + max(len(failing) - cases, 0)
    if more:
        lines.append(f"• and {more} more failing cases")
    if d.get("always_failing"):
        n = d["always_failing"]
        lines.append(f"• {n} case{'s' if n > 1 else ''} that always fail{'s' if n == 1 else ''} (no news)")
    return lines


def _availability(d: dict) -> list[str]:
    """The errored share, the error classes and HTTP statuses, and request ids for the provider."""
    lines = [f"Errored samples: {d['errors']}/{d['samples']} ({pct(d['error_rate'])}, "
             f"threshold {pct(d['threshold'])})"]
    classes = ", ".join(f"{esc(k)}: {v}" for k, v in d.get("classes", {}).items())
    statuses = ", ".join(f"{'HTTP ' + esc(k) if k != 'none' else 'no HTTP response'}: {v}"
                         for k, v in d.get("statuses", {}).items())
    lines.append(" · ".join(p for p in (classes and f"Error classes: {classes}",
                                        statuses and f"Statuses: {statuses}") if p) or "Error classes: -")
    if d.get("request_ids"):
        lines.append("Request ids to hand to the provider: " + ", ".join(f"`{esc(r)}`" for r in d["request_ids"]))
    return lines
