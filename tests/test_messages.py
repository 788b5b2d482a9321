"""What a message says, built from alert details (no I/O: canary/incidents.py, canary/messages.py): grouping per suite, the figures,
links into the report, `--sim` commands, escaping of every inserted value, Slack's limits."""
from __future__ import annotations

import json

import pytest

from canary import incidents, messages
from canary.alerts import Change
from canary.config import load_config
from canary.errors import ConfigError

HOSTILE = "<!channel> & <@U024BE7LH>"


def quality(**over) -> dict:
    d = {"rate": 0.6, "passed": 36, "answered": 60, "mean": 0.93, "lower": 0.85, "method": "sigma", "errors": 2,
         "confirmed": True, "runs": [[17, 30], [19, 30]], "reason": "r", "more_failing": 0, "always_failing": 1,
         "failing": [{"case": f"case{i}", "kind": "newly_failing", "passed": 0, "answered": 6, "base_passed": 42,
                      "base_answered": 42, "explanation": f"number: expected 3, the answer gives {i}"}
                     for i in range(5)]}
    return {**d, **over}


def availability(**over) -> dict:
    d = {"errors": 10, "samples": 30, "error_rate": 1 / 3, "threshold": 0.2, "classes": {"overloaded": 9, "timeout": 1},
         "statuses": {"529": 9, "none": 1}, "request_ids": ["req_1", "req_2", "req_3"], "reason": "10/30 errored"}
    return {**d, **over}


def sections(message: dict) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]


def test_one_suite_shows_five_cases_several_show_the_top_three_each():
    one = incidents.opened("m", [Change("m", "s", "quality", "opened", 1, quality())])
    assert one["text"] == "canary: m · s: pass rate dropped: r"
    assert sections(one)[0] == ":rotating_light: canary: *m* · *s*: pass rate dropped"
    body = sections(one)[1]
    assert body.count("• `case") == 5 and "1 case that always fails (no news)" in body
    assert "Pooled: this run 17/30 and its confirmation run 19/30, judged together" in body
    assert "Errors: 2 samples (not counted as failures)" in body
    several = incidents.opened("m", [Change("m", s, "quality", "opened", 1, quality()) for s in ("a", "b")])
    for body in sections(several)[1:]:
        assert body.count("• `case") == 3 and "• and 2 more failing cases" in body


def test_a_slow_slide_says_why_its_floor_is_not_the_one_status_shows():
    slide = {"points": 6, "rate": 0.84, "expected": 0.9, "lower": 0.86, "runs": 5, "reference_date": "2026-11-01"}
    msg = incidents.opened("m", [Change("m", "s", "quality", "opened", 1, quality(slide=slide, runs=[[26, 30]]))])
    body = sections(msg)[1]
    assert "*6 points below the reference of 2026-11-01* (rolling window absorbed it)" in body
    assert "(alert below 86.0%)" in body  # the reference's floor...
    # ...and the rolling floor `canary status` shows, said to be not in breach
    assert "rolling baseline: expected 93.0%, band floor 85.0% (sigma), not in breach" in body
    assert "Pooled" not in body  # one run: nothing pooled


def test_availability_carries_statuses_and_request_ids():
    msg = incidents.opened("m", [Change("m", "s", "availability", "opened", 1, availability())])
    body = sections(msg)[1]
    assert "Error classes: overloaded: 9, timeout: 1 · Statuses: HTTP 529: 9, no HTTP response: 1" in body
    assert "Request ids to hand to the provider: `req_1`, `req_2`, `req_3`" in body


def test_links_go_to_the_series_in_the_report_and_commands_say_sim():
    links = messages.Links("https://canary.example.com/r?a=1&b=2", sim=True)
    msg = incidents.opened("m", [Change("m", "s", "quality", "opened", 1, quality())], links)
    assert sections(msg)[1].startswith("*<https://canary.example.com/r?a=1&amp;b=2#s-m--s|s>* · *pass rate dropped*")
    assert msg["blocks"][-1]["elements"][0]["text"] == (
        "More: `canary failures --model m --suite s --sim` · `canary history --model m --suite s --sim` · "
        "<https://canary.example.com/r?a=1&amp;b=2|the report>")
    back = incidents.recovered("m", [Change("m", "s", "quality", "recovered", 1, {"reason": "ok"})], messages.Links())
    assert back["blocks"][-1]["elements"][0]["text"] == "More: `canary history --model m --suite s`"  # no link, no --sim
    assert sections(back)[1] == "*s* · pass rate dropped: back to normal: ok"
    changed = messages.fingerprint_changed("m", {"mean": 0.1, "upper": 0.2, "moved": 3, "inputs": 20, "distance": 0.4,
                                                 "since": "2026-11-01T06:00", "probes": 2, "reason": "moved"}, links)
    text = json.dumps(changed)
    assert "#s-m--fingerprint|fingerprint>" in text and "`canary fingerprint status --model m --sim`" in text
    assert messages.anchor("gpt-5.1", "my suite") == "s-gpt-5-1--my-suite"


def test_every_inserted_value_is_escaped():
    q = quality(method=HOSTILE, failing=[{**quality()["failing"][0], "case": HOSTILE, "explanation": HOSTILE}])
    a = availability(classes={HOSTILE: 1}, statuses={HOSTILE: 1}, request_ids=[HOSTILE])
    changes = [Change("m", HOSTILE, "quality", "opened", 1, {**q, "reason": HOSTILE}),
               Change("m", HOSTILE, "availability", "opened", 1, a),
               Change("m", "s", "model_changed", "opened", 1, {"now": HOSTILE, "before": HOSTILE, "reason": HOSTILE}),
               Change("m", "s", "drift:tokens", "opened", 1, {"reason": HOSTILE})]
    links = messages.Links("https://x.example/?q=<b>")  # (config refuses this one; escaped all the same)
    for msg in (incidents.opened("m", changes, links), incidents.recovered("m", changes, links),
                incidents.opened("m", changes[:1]), incidents.recovered("m", changes[:1])):
        text = json.dumps(msg)
        assert "<!channel>" not in text and "<@U" not in text and "?q=<b>" not in text
        assert "&lt;!channel&gt; &amp; &lt;@U024BE7LH&gt;" in text


def test_slack_limits_are_kept_however_large_the_incident():
    long = quality(failing=[{**quality()["failing"][0], "explanation": "x" * 300, "case": f"c{i}"} for i in range(5)])
    changes = [Change("m", f"s{i:02}", kind, "opened", 1, long if kind == "quality" else availability())
               for i in range(60) for kind in ("quality", "availability")]
    msg = incidents.opened("m", changes, messages.Links("https://canary.example.com/"))
    assert len(msg["blocks"]) <= 50
    assert sections(msg)[-1] == "and 20 more: `canary status`"
    assert all(len(s) <= 3000 for s in sections(msg))
    alone = incidents.opened("m", [Change("m", "s", "quality", "opened", 1, quality(
        failing=[{**quality()["failing"][0], "explanation": "y" * 1000}] * 5))])
    assert all(len(s) <= 3000 for s in sections(alone)) and sections(alone)[1].endswith("…")


def test_report_url_is_checked_and_its_fragment_dropped(tmp_path):
    path = tmp_path / "canary.yaml"
    path.write_text("alerts:\n  report_url: https://canary.example.com/#top\n")
    assert load_config(path).alerts.report_url == "https://canary.example.com/"
    path.write_text("alerts:\n  report_url: canary.example.com|x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:2" in str(info.value) and "is not an http(s) URL" in str(info.value)
