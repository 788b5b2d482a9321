"""What an alert says: Slack Block Kit messages, each with a plain-text fallback. No I/O here."""
from __future__ import annotations

KIND_TITLES = {
    "quality": "pass rate dropped",
    "availability": "API errors",
    "drift:tokens": "output tokens drifted",
    "drift:latency": "latency drifted",
    "model_changed": "the API reports a different model",
}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _fields(pairs: list[tuple[str, str]]) -> dict:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in pairs]}


def _text(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def opened(model: str, suite: str, kind: str, details: dict) -> dict:
    """The message for a series going into breach."""
    title = f":rotating_light: canary: *{model}* · *{suite}*: {KIND_TITLES.get(kind, kind)}"
    blocks = [_text(title)]
    if kind == "quality":
        blocks += _quality(details)
    elif kind == "availability":
        blocks.append(_fields([
            ("Errored samples", f"{details['errors']}/{details['samples']} ({_pct(details['error_rate'])})"),
            ("Threshold", _pct(details["threshold"])),
            ("Error classes", ", ".join(f"{k}: {v}" for k, v in details.get("classes", {}).items()) or "-"),
        ]))
    elif kind == "model_changed":
        blocks.append(_fields([("Now", f"`{details['now']}`"), ("Baseline", f"`{details['before']}`")]))
    else:
        blocks.append(_text(details.get("reason", "")))
    blocks.append(_context(model, suite, kind))
    summary = details.get("reason", KIND_TITLES.get(kind, kind))
    return {"text": f"canary: {model} · {suite}: {KIND_TITLES.get(kind, kind)}: {summary}", "blocks": blocks}


def _quality(details: dict) -> list[dict]:
    """Pass rate and band; for a slow slide, how far below the reference; then the failing
    cases, the news first (cases that passed in the baseline), the always-failing as a count."""
    rate = f"{_pct(details['rate'])} ({details['passed']}/{details['answered']})"
    confirmed = ", confirmed by a second run" if details.get("confirmed") else ""
    slide = details.get("slide")
    if slide:
        blocks = [_text(f"*{slide['points']:.0f} points below the reference of {slide['reference_date']}* "
                        f"(rolling window absorbed it): the last {slide['runs']} runs pass "
                        f"{_pct(slide['rate'])}, the reference expects {_pct(slide['expected'])} of the same cases "
                        f"(alert below {_pct(slide['lower'])}). `canary ack` accepts the new level.")]
        pairs = [("Pass rate today", rate), ("Rolling baseline", f"expects {_pct(details['mean'])}, "
                                                                  f"not in breach{confirmed}")]
    else:
        blocks = []
        pairs = [("Pass rate", rate),
                 ("Baseline", f"expects {_pct(details['mean'])}, band down to {_pct(details['lower'])}"),
                 ("Threshold", f"{_pct(details['lower'])} ({details['method']}{confirmed})")]
    pairs.append(("Errors", f"{details.get('errors', 0)} samples (not counted as failures)"))
    blocks.append(_fields(pairs))
    lines = []
    for f in details.get("failing", []):
        label = {"newly_failing": "newly failing", "flaky": "flaky"}.get(f["kind"], "failing")
        lines.append(f"• `{f['case']}` ({label}: {f['passed']}/{f['answered']} passed today, "
                     f"{f['base_passed']}/{f['base_answered']} before): {f['explanation'] or '-'}")
    if details.get("more_failing"):
        lines.append(f"• and {details['more_failing']} more failing cases")
    if details.get("always_failing"):
        n = details["always_failing"]
        lines.append(f"• {n} case{'s' if n > 1 else ''} that always fail{'s' if n == 1 else ''} (no news)")
    if lines:
        blocks.append(_text("*Failing cases, newly failing first*\n" + "\n".join(lines)))
    return blocks


def recovered(model: str, suite: str, kind: str, details: dict) -> dict:
    """The one message for a series back inside its band."""
    title = f":white_check_mark: canary: *{model}* · *{suite}*: recovered ({KIND_TITLES.get(kind, kind)})"
    blocks = [_text(title), _text(details.get("reason", "")), _context(model, suite, kind)]
    return {"text": f"canary: {model} · {suite}: recovered: {details.get('reason', '')}", "blocks": blocks}


def _context(model: str, suite: str, kind: str) -> dict:
    command = f"canary history --model {model} --suite {suite}"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": f"More: `{command}`"}]}


def config_error(details: dict | None) -> dict:
    """Slack message of a config_error alert (None: the config validates again)."""
    if details is None:
        text = "canary: the config validates again; it is loaded and running"
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f":white_check_mark: {text}"}}]}
    text = f"canary: the config does not validate: {details['reason']}"
    problems = "\n".join(details["problems"][:10])
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {text}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{problems}```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Check with: `canary validate`"}]}]}
