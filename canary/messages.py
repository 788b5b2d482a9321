"""What an alert says: Slack Block Kit messages, each with a plain-text fallback. No I/O here.

Every value inserted into a message (model and suite names, case ids, failing answers,
reported model ids, config problems) goes through `_esc`: redacted (redact.py), then with
Slack's control characters escaped (`&`, `<`, `>`), so a reply saying `<!channel>` or
`<@U024BE7LH>` is shown, never acted on.
"""
from __future__ import annotations

from . import redact

KIND_TITLES = {
    "quality": "pass rate dropped",
    "availability": "API errors",
    "drift:tokens": "output tokens drifted",
    "drift:latency": "latency drifted",
    "model_changed": "the API reports a different model",
}


def _esc(value) -> str:
    """A value as text Slack shows literally: secrets redacted, `&`, `<` and `>` escaped."""
    text = redact.text(str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _fields(pairs: list[tuple[str, str]]) -> dict:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in pairs]}


def _text(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def opened(model: str, suite: str, kind: str, details: dict) -> dict:
    """The message for a series going into breach."""
    model, suite, what = _esc(model), _esc(suite), _esc(KIND_TITLES.get(kind, kind))
    title = f":rotating_light: canary: *{model}* · *{suite}*: {what}"
    blocks = [_text(title)]
    if kind == "quality":
        blocks.append(_fields([
            ("Pass rate", f"{_pct(details['rate'])} ({details['passed']}/{details['answered']})"),
            ("Baseline", f"mean {_pct(details['mean'])}, band down to {_pct(details['lower'])}"),
            ("Threshold", f"{_pct(details['lower'])} ({_esc(details['method'])}"
                          f"{', confirmed by a second run' if details.get('confirmed') else ''})"),
            ("Errors", f"{details.get('errors', 0)} samples (not counted as failures)"),
        ]))
        failing = details.get("failing", [])
        if failing:
            lines = [f"• `{_esc(f['case'])}`: {_esc(f['explanation'])}" for f in failing]
            blocks.append(_text("*Failing cases*\n" + "\n".join(lines)))
    elif kind == "availability":
        blocks.append(_fields([
            ("Errored samples", f"{details['errors']}/{details['samples']} ({_pct(details['error_rate'])})"),
            ("Threshold", _pct(details["threshold"])),
            ("Error classes", ", ".join(f"{_esc(k)}: {v}" for k, v in details.get("classes", {}).items()) or "-"),
        ]))
    elif kind == "model_changed":
        blocks.append(_fields([("Now", f"`{_esc(details['now'])}`"), ("Baseline", f"`{_esc(details['before'])}`")]))
    else:
        blocks.append(_text(_esc(details.get("reason", ""))))
    blocks.append(_context(model, suite))
    summary = _esc(details.get("reason", KIND_TITLES.get(kind, kind)))
    return {"text": f"canary: {model} · {suite}: {what}: {summary}", "blocks": blocks}


def recovered(model: str, suite: str, kind: str, details: dict) -> dict:
    """The one message for a series back inside its band."""
    model, suite, reason = _esc(model), _esc(suite), _esc(details.get("reason", ""))
    title = f":white_check_mark: canary: *{model}* · *{suite}*: recovered ({_esc(KIND_TITLES.get(kind, kind))})"
    blocks = [_text(title), _text(reason), _context(model, suite)]
    return {"text": f"canary: {model} · {suite}: recovered: {reason}", "blocks": blocks}


def _context(model: str, suite: str) -> dict:
    """The command to see more (model and suite already escaped)."""
    command = f"canary history --model {model} --suite {suite}"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": f"More: `{command}`"}]}


def config_error(details: dict | None) -> dict:
    """Slack message of a config_error alert (None: the config validates again)."""
    if details is None:
        text = "canary: the config validates again; it is loaded and running"
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f":white_check_mark: {text}"}}]}
    text = f"canary: the config does not validate: {_esc(details['reason'])}"
    problems = "\n".join(_esc(p) for p in details["problems"][:10])
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {text}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{problems}```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Check with: `canary validate`"}]}]}
