"""What an alert says: Slack Block Kit messages, each with a plain-text fallback. No I/O here.

This module holds what every message shares: `esc`, the block builders, the titles of the
alert kinds, and `Links` (where a message sends its reader: a series' section of the
report, `anchor` being the report's id of a series, and `--sim` in the commands when the
runs are the simulated model's); and the messages about the fingerprint and canary itself.
What the alerts of one model in one run say is canary/incidents.py.

Every value inserted into a message (model and suite names, case ids, failing answers,
reported model ids, request ids, config problems) goes through `esc`: redacted
(redact.py), then with Slack's control characters escaped (`&`, `<`, `>`), so a reply
saying `<!channel>` or `<@U024BE7LH>` is shown, never acted on.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import redact

KIND_TITLES = {
    "quality": "pass rate dropped",
    "availability": "API errors",
    "drift:tokens": "output tokens drifted",
    "drift:latency": "latency drifted",
    "model_changed": "the API reports a different model",
}


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
        name = esc(suite).replace("\n", " ")
        if not self.report_url:
            return f"*{name}*"
        return f"*<{esc(self.report_url)}#{anchor(model, suite)}|{name}>*"


def esc(value) -> str:
    """A value as text Slack shows literally: secrets redacted, `&`, `<` and `>` escaped."""
    text = redact.text(str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def title(kind: str) -> str:
    """What an alert kind means, for a message."""
    return esc(KIND_TITLES.get(kind, kind))


# --- the fingerprint, and canary itself ---------------------------------------------------------

def fingerprint_changed(model: str, details: dict, links: Links = Links()) -> dict:
    """A model_changed episode of the fingerprint: what moved, against what, since when, and why."""
    m = esc(model)
    head = f":rotating_light: canary: *{m}*: the model behind the name changed (fingerprint)"
    usual = f"{details['mean']:.3f} (alert above {details['upper']:.3f})"
    lines = [f"{links.series(model, 'fingerprint')}: {details['moved']} of {details['inputs']} border inputs outside "
             f"their usual range",
             f"Distance {details['distance']:.3f} against a usual {usual}",
             f"Since {details['since'][:16].replace('T', ' ')} UTC ({details['probes']} probes)"]
    if details.get("logprob") is not None and details.get("logprob_mean") is not None:
        lines.append(f"Logprob change {details['logprob']:.3f} nats against a usual {details['logprob_mean']:.3f}")
    moved = ", ".join(f"`{esc(p)}`" for p in details.get("moved_inputs", []))
    why = ("The first answer tokens of prompts that sat on a border moved together, and stayed moved. The likely cause "
           "is a different model, quantization or serving path behind the same name: the API's model id did not say so."
           + (f" Moved most: {moved}." if moved else ""))
    more = (f"More: {links.command(f'canary fingerprint status --model {m}')} · accept it as the new normal: "
            f"{links.command(f'canary ack --model {m} --suite fingerprint')}")
    return {"text": f"canary: {m}: the model behind the name changed: {esc(details['reason'])}",
            "blocks": [section(head), section("\n".join(lines)), section(why), context(more)]}


def fingerprint_recovered(model: str, details: dict, links: Links = Links()) -> dict:
    m, reason = esc(model), esc(details.get("reason", ""))
    head = f":white_check_mark: canary: *{m}*: fingerprint back to normal (the earlier model is served again)"
    more = f"More: {links.command(f'canary fingerprint status --model {m}')}"
    return {"text": f"canary: {m} · fingerprint: back to normal: {reason}",
            "blocks": [section(head), section(f"{links.series(model, 'fingerprint')}: {reason}"), context(more)]}


def config_error(details: dict | None) -> dict:
    """Slack message of a config_error alert (None: the config validates again)."""
    if details is None:
        text = "canary: the config validates again; it is loaded and running"
        return {"text": text, "blocks": [section(f":white_check_mark: {text}")]}
    text = f"canary: the config does not validate: {esc(details['reason'])}"
    problems = "\n".join(esc(p) for p in details["problems"][:10])
    return {"text": text, "blocks": [section(f":warning: {text}"), section(f"```{problems}```"),
                                     context("Check with: `canary validate`")]}


def about_canary(model: str, kind: str, details: dict | None) -> dict:
    """A message about canary itself for one model: `canary_failing` (details None: it recovered)
    or `slot_missed` (a slot given up). `details["reason"]` says what happened."""
    if details is None:
        text = f"canary: scheduled runs of {esc(model)} work again"
        icon = ":white_check_mark:"
    else:
        what = "canary itself is failing" if kind == "canary_failing" else "a scheduled slot was given up"
        text = f"canary: {esc(model)}: {what}: {esc(details['reason'])}"
        icon = ":warning:"
    hint = f"Check with: `curl {esc('<daemon.http>')}/healthz` and the daemon's log (errored answers are not this alert)"
    return {"text": text, "blocks": [section(f"{icon} {text}"), context(hint)]}
