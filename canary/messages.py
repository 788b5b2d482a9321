"""What an alert says: Slack Block Kit messages, each with a plain-text fallback. No I/O here.

The alerts one model opens in one run make one message (`opened`), a section per suite:
its k/n, expected rate and band floor, the top newly failing cases, the HTTP statuses and
request ids of errored samples. Alerts that recover together make one message
(`recovered`). Each suite links to its section of the report when `alerts.report_url` is
set (`Links`; `anchor` is the report's id of a series), and the commands to see more name
`--sim` when the runs are the simulated model's.

Every value inserted into a message (model and suite names, case ids, failing answers,
reported model ids, request ids, config problems) goes through `_esc`: redacted
(redact.py), then with Slack's control characters escaped (`&`, `<`, `>`), so a reply
saying `<!channel>` or `<@U024BE7LH>` is shown, never acted on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from . import redact

KIND_TITLES = {
    "quality": "pass rate dropped",
    "availability": "API errors",
    "drift:tokens": "output tokens drifted",
    "drift:latency": "latency drifted",
    "model_changed": "the API reports a different model",
}
MAX_SECTIONS = 40  # Slack takes 50 blocks a message: title, this many suites, the rest counted, context
SECTION_CHARS = 2900  # Slack takes 3000 characters a section
CASES_ONE_SUITE, CASES_PER_SUITE = 5, 3  # failing cases shown: alone, or beside other suites


def anchor(model: str, suite: str) -> str:
    """The id of a series' section in the report (report_view), which messages link to."""
    return "s-" + "".join(ch if ch.isalnum() else "-" for ch in f"{model}--{suite}")


@dataclass(frozen=True)
class Links:
    """Where a message sends its reader: the published report (`alerts.report_url`), and the
    database the runs are in (`--sim`: the simulated model's)."""

    report_url: str | None = None
    sim: bool = False

    def command(self, text: str) -> str:
        """A command to see more, as a code span (its values already escaped)."""
        return f"`{text}{' --sim' if self.sim else ''}`"

    def series(self, model: str, suite: str) -> str:
        """The suite's name, bold, linked to its section of the report when there is one."""
        name = _esc(suite).replace("\n", " ")
        if not self.report_url:
            return f"*{name}*"
        return f"*<{_esc(self.report_url)}#{anchor(model, suite)}|{name}>*"


class Event(Protocol):
    """One alert event a message carries (alerts.Change)."""

    suite: str
    kind: str
    details: dict


def _esc(value) -> str:
    """A value as text Slack shows literally: secrets redacted, `&`, `<` and `>` escaped."""
    text = redact.text(str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _text(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _title(kind: str) -> str:
    return _esc(KIND_TITLES.get(kind, kind))


# --- series alerts: one message per model and action --------------------------------------------

def opened(model: str, events: list[Event], links: Links = Links()) -> dict:
    """The message for the alerts one model opened in one run: a section per suite."""
    m, suites = _esc(model), _by_suite(events)
    cases = CASES_ONE_SUITE if len(suites) == 1 else CASES_PER_SUITE
    sections = [[f"{links.series(model, suite)} · {', '.join(f'*{_title(e.kind)}*' for e in group)}"]
                + [line for e in group for line in _body(e, cases)] for suite, group in suites.items()]
    if len(events) == 1:
        [e] = events
        head = f"*{m}* · *{_esc(e.suite)}*: {_title(e.kind)}"
        text = f"canary: {m} · {_esc(e.suite)}: {_title(e.kind)}: {_esc(e.details.get('reason', ''))}"
    else:
        head = f"*{m}*: {len(suites)} suite{'s' * (len(suites) > 1)} in breach: {_summary(suites)}"
        text = f"canary: {m}: {_summary(suites, bold=False)}"
    return {"text": text, "blocks": _blocks(f":rotating_light: canary: {head}", sections,
                                            _more(model, suites, links, failures=True))}


def recovered(model: str, events: list[Event], links: Links = Links()) -> dict:
    """The one message for the alerts of one model that recovered together."""
    m, suites = _esc(model), _by_suite(events)
    sections = [[f"{links.series(model, suite)} · {_title(e.kind)}: back to normal: {_esc(e.details.get('reason', ''))}"]
                for suite, group in suites.items() for e in group]
    if len(events) == 1:
        [e] = events
        head = f"*{m}* · *{_esc(e.suite)}*: recovered ({_title(e.kind)})"
        text = f"canary: {m} · {_esc(e.suite)}: recovered: {_esc(e.details.get('reason', ''))}"
    else:
        head = f"*{m}*: recovered: {_summary(suites)}"
        text = f"canary: {m}: recovered: {_summary(suites, bold=False)}"
    return {"text": text, "blocks": _blocks(f":white_check_mark: canary: {head}", sections, _more(model, suites, links))}


def _by_suite(events: list[Event]) -> dict[str, list[Event]]:
    order = list(KIND_TITLES)
    out: dict[str, list[Event]] = {}
    for e in sorted(events, key=lambda e: (e.suite, order.index(e.kind) if e.kind in order else len(order), e.kind)):
        out.setdefault(e.suite, []).append(e)
    return out


def _summary(suites: dict[str, list[Event]], bold: bool = True) -> str:
    star = "*" if bold else ""
    return "; ".join(f"{star}{_esc(s)}{star}: {' and '.join(_title(e.kind) for e in group)}"
                     for s, group in suites.items())


def _blocks(title: str, sections: list[list[str]], more: str) -> list[dict]:
    """The title, a section per suite (at most MAX_SECTIONS, each cut at a line within Slack's
    limit), then the commands to see more."""
    blocks = [_text(title)]
    for lines in sections[:MAX_SECTIONS]:
        kept: list[str] = []
        for line in lines:
            if sum(len(k) + 1 for k in kept) + len(line) > SECTION_CHARS:
                kept.append("…")
                break
            kept.append(line)
        blocks.append(_text("\n".join(kept)))
    if len(sections) > MAX_SECTIONS:
        blocks.append(_text(f"and {len(sections) - MAX_SECTIONS} more: `canary status`"))
    return blocks + [_context(more)]


def _more(model: str, suites: dict[str, list[Event]], links: Links, failures: bool = False) -> str:
    """The commands to see more (and the report), for one suite or for the model's; `failures`:
    the failing cases too, when a pass rate dropped."""
    m = _esc(model)
    quality = failures and any(e.kind == "quality" for group in suites.values() for e in group)
    if len(suites) == 1:
        s = _esc(next(iter(suites)))
        commands = ([links.command(f"canary failures --model {m} --suite {s}")] if quality else []) + [
            links.command(f"canary history --model {m} --suite {s}")]
    else:
        commands = ([links.command(f"canary failures --model {m}")] if quality else []) + [
            links.command("canary status")]
    report = f" · <{_esc(links.report_url)}|the report>" if links.report_url else ""
    return f"More: {' · '.join(commands)}{report}"


def _body(e: Event, cases: int) -> list[str]:
    """The lines of one alert in its suite's section."""
    d = e.details
    if e.kind == "quality":
        return _quality(d, cases)
    if e.kind == "availability":
        return _availability(d)
    if e.kind == "model_changed":
        return [f"The API reports `{_esc(d['now'])}`, the baseline ran on `{_esc(d['before'])}`"]
    return [_esc(d.get("reason", ""))]


def _quality(d: dict, cases: int) -> list[str]:
    """k/n, the expected rate and the band floor as `canary status` shows them (pooled with the
    confirmation run, which the message says); for a slow slide, how far below the reference;
    then the failing cases, the news first, the always-failing only counted."""
    rate = f"{_pct(d['rate'])} ({d['passed']}/{d['answered']})"
    band = f"expected {_pct(d['mean'])}, band floor {_pct(d['lower'])} ({_esc(d['method'])})"
    slide = d.get("slide")
    if slide:
        lines = [f"*{slide['points']:.0f} points below the reference of {_esc(slide['reference_date'])}* "
                 f"(rolling window absorbed it): the last {slide['runs']} runs pass {_pct(slide['rate'])}, the "
                 f"reference expects {_pct(slide['expected'])} of the same cases (alert below {_pct(slide['lower'])}). "
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
        label = {"newly_failing": "newly failing", "flaky": "flaky"}.get(f["kind"], "failing")
        lines.append(f"• `{_esc(f['case'])}` ({label}: {f['passed']}/{f['answered']} passed today, "
                     f"{f['base_passed']}/{f['base_answered']} before): {_esc(f['explanation'] or '-')}")
    more = d.get("more_failing", 0) + max(len(failing) - cases, 0)
    if more:
        lines.append(f"• and {more} more failing cases")
    if d.get("always_failing"):
        n = d["always_failing"]
        lines.append(f"• {n} case{'s' if n > 1 else ''} that always fail{'s' if n == 1 else ''} (no news)")
    return lines


def _availability(d: dict) -> list[str]:
    """The errored share, the error classes and HTTP statuses, and request ids for the provider."""
    lines = [f"Errored samples: {d['errors']}/{d['samples']} ({_pct(d['error_rate'])}, "
             f"threshold {_pct(d['threshold'])})"]
    classes = ", ".join(f"{_esc(k)}: {v}" for k, v in d.get("classes", {}).items())
    statuses = ", ".join(f"{'HTTP ' + _esc(k) if k != 'none' else 'no HTTP response'}: {v}"
                         for k, v in d.get("statuses", {}).items())
    lines.append(" · ".join(p for p in (classes and f"Error classes: {classes}",
                                        statuses and f"Statuses: {statuses}") if p) or "Error classes: -")
    if d.get("request_ids"):
        lines.append("Request ids to hand to the provider: " + ", ".join(f"`{_esc(r)}`" for r in d["request_ids"]))
    return lines


# --- the fingerprint, and canary itself ---------------------------------------------------------

def fingerprint_changed(model: str, details: dict, links: Links = Links()) -> dict:
    """A model_changed episode of the fingerprint: what moved, against what, since when, and why."""
    m = _esc(model)
    title = f":rotating_light: canary: *{m}*: the model behind the name changed (fingerprint)"
    usual = f"{details['mean']:.3f} (alert above {details['upper']:.3f})"
    lines = [f"{links.series(model, 'fingerprint')}: {details['moved']} of {details['inputs']} border inputs outside "
             f"their usual range",
             f"Distance {details['distance']:.3f} against a usual {usual}",
             f"Since {details['since'][:16].replace('T', ' ')} UTC ({details['probes']} probes)"]
    if details.get("logprob") is not None and details.get("logprob_mean") is not None:
        lines.append(f"Logprob change {details['logprob']:.3f} nats against a usual {details['logprob_mean']:.3f}")
    moved = ", ".join(f"`{_esc(p)}`" for p in details.get("moved_inputs", []))
    why = ("The first answer tokens of prompts that sat on a border moved together, and stayed moved. The likely cause "
           "is a different model, quantization or serving path behind the same name: the API's model id did not say so."
           + (f" Moved most: {moved}." if moved else ""))
    more = (f"More: {links.command(f'canary fingerprint status --model {m}')} · accept it as the new normal: "
            f"{links.command(f'canary ack --model {m} --suite fingerprint')}")
    return {"text": f"canary: {m}: the model behind the name changed: {_esc(details['reason'])}",
            "blocks": [_text(title), _text("\n".join(lines)), _text(why), _context(more)]}


def fingerprint_recovered(model: str, details: dict, links: Links = Links()) -> dict:
    m, reason = _esc(model), _esc(details.get("reason", ""))
    title = f":white_check_mark: canary: *{m}*: fingerprint back to normal (the earlier model is served again)"
    more = f"More: {links.command(f'canary fingerprint status --model {m}')}"
    return {"text": f"canary: {m} · fingerprint: back to normal: {reason}",
            "blocks": [_text(title), _text(f"{links.series(model, 'fingerprint')}: {reason}"), _context(more)]}


def config_error(details: dict | None) -> dict:
    """Slack message of a config_error alert (None: the config validates again)."""
    if details is None:
        text = "canary: the config validates again; it is loaded and running"
        return {"text": text, "blocks": [_text(f":white_check_mark: {text}")]}
    text = f"canary: the config does not validate: {_esc(details['reason'])}"
    problems = "\n".join(_esc(p) for p in details["problems"][:10])
    return {"text": text, "blocks": [_text(f":warning: {text}"), _text(f"```{problems}```"),
                                     _context("Check with: `canary validate`")]}


def about_canary(model: str, kind: str, details: dict | None) -> dict:
    """A message about canary itself for one model: `canary_failing` (details None: it recovered)
    or `slot_missed` (a slot given up). `details["reason"]` says what happened."""
    if details is None:
        text = f"canary: scheduled runs of {_esc(model)} work again"
        icon = ":white_check_mark:"
    else:
        what = "canary itself is failing" if kind == "canary_failing" else "a scheduled slot was given up"
        text = f"canary: {_esc(model)}: {what}: {_esc(details['reason'])}"
        icon = ":warning:"
    hint = f"Check with: `curl {_esc('<daemon.http>')}/healthz` and the daemon's log (errored answers are not this alert)"
    return {"text": text, "blocks": [_text(f"{icon} {text}"), _context(hint)]}
