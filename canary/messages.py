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
        blocks += _quality(details)
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


def _quality(details: dict) -> list[dict]:
    """Pass rate and band; for a slow slide, how far below the reference; then the failing
    cases, the news first (cases that passed in the baseline), the always-failing as a count."""
    rate = f"{_pct(details['rate'])} ({details['passed']}/{details['answered']})"
    confirmed = ", confirmed by a second run" if details.get("confirmed") else ""
    slide = details.get("slide")
    if slide:
        blocks = [_text(f"*{slide['points']:.0f} points below the reference of {_esc(slide['reference_date'])}* "
                        f"(rolling window absorbed it): the last {slide['runs']} runs pass "
                        f"{_pct(slide['rate'])}, the reference expects {_pct(slide['expected'])} of the same cases "
                        f"(alert below {_pct(slide['lower'])}). `canary ack` accepts the new level.")]
        pairs = [("Pass rate today", rate), ("Rolling baseline", f"expects {_pct(details['mean'])}, "
                                                                  f"not in breach{confirmed}")]
    else:
        blocks = []
        pairs = [("Pass rate", rate),
                 ("Baseline", f"expects {_pct(details['mean'])}, band down to {_pct(details['lower'])}"),
                 ("Threshold", f"{_pct(details['lower'])} ({_esc(details['method'])}{confirmed})")]
    pairs.append(("Errors", f"{details.get('errors', 0)} samples (not counted as failures)"))
    blocks.append(_fields(pairs))
    lines = []
    for f in details.get("failing", []):
        label = {"newly_failing": "newly failing", "flaky": "flaky"}.get(f["kind"], "failing")
        lines.append(f"• `{_esc(f['case'])}` ({label}: {f['passed']}/{f['answered']} passed today, "
                     f"{f['base_passed']}/{f['base_answered']} before): {_esc(f['explanation'] or '-')}")
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
    model, suite, reason = _esc(model), _esc(suite), _esc(details.get("reason", ""))
    title = f":white_check_mark: canary: *{model}* · *{suite}*: recovered ({_esc(KIND_TITLES.get(kind, kind))})"
    blocks = [_text(title), _text(reason), _context(model, suite)]
    return {"text": f"canary: {model} · {suite}: recovered: {reason}", "blocks": blocks}


def fingerprint_changed(model: str, details: dict) -> dict:
    """A model_changed episode of the fingerprint: what moved, against what, since when, and why."""
    model = _esc(model)
    title = f":rotating_light: canary: *{model}*: the model behind the name changed (fingerprint)"
    usual = f"{details['mean']:.3f} (alert above {details['upper']:.3f})"
    pairs = [("Inputs moved", f"{details['moved']} of {details['inputs']} border inputs outside their usual range"),
             ("Distance", f"{details['distance']:.3f} against a usual {usual}"),
             ("Since", f"{details['since'][:16].replace('T', ' ')} UTC ({details['probes']} probes)")]
    if details.get("logprob") is not None and details.get("logprob_mean") is not None:
        pairs.append(("Logprob change", f"{details['logprob']:.3f} nats against a usual {details['logprob_mean']:.3f}"))
    moved = ", ".join(f"`{_esc(p)}`" for p in details.get("moved_inputs", []))
    blocks = [_text(title), _fields(pairs), _text(
        "The first answer tokens of prompts that sat on a border moved together, and stayed moved. The likely cause "
        "is a different model, quantization or serving path behind the same name: the API's model id did not say so."
        + (f" Moved most: {moved}." if moved else "")),
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            f"More: `canary fingerprint status --model {model}` · accept it as the new normal: "
            f"`canary ack --model {model} --suite fingerprint`"}]}]
    return {"text": f"canary: {model}: the model behind the name changed: {_esc(details['reason'])}", "blocks": blocks}


def fingerprint_recovered(model: str, details: dict) -> dict:
    model, reason = _esc(model), _esc(details.get("reason", ""))
    title = f":white_check_mark: canary: *{model}*: fingerprint back to normal (the earlier model is served again)"
    blocks = [_text(title), _text(reason), _context(model, "fingerprint")]
    return {"text": f"canary: {model} · fingerprint: back to normal: {reason}", "blocks": blocks}


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


def about_canary(model: str, kind: str, details: dict | None) -> dict:
    """A message about canary itself for one model: `canary_failing` (details None: it recovered)
    or `slot_missed` (a slot given up). `details["reason"]` says what happened."""
    if details is None:
        text = f"canary: scheduled runs of {model} work again"
        icon = ":white_check_mark:"
    else:
        what = "canary itself is failing" if kind == "canary_failing" else "a scheduled slot was given up"
        text = f"canary: {model}: {what}: {details['reason']}"
        icon = ":warning:"
    hint = "Check with: `curl <daemon.http>/healthz` and the daemon's log (errored answers are not this alert)"
    return {"text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {text}"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": hint}]}]}
