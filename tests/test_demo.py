"""`canary demo`: simulated days, an injected regression, detected once, recovered once."""
from __future__ import annotations

from importlib import resources

from click.testing import CliRunner

from canary.cli import main
from canary.demo import run_demo
from canary.suites import load_suites


def test_the_demo_detects_the_injected_regression_once_and_its_recovery():
    with resources.as_file(resources.files("canary.prompts")) as prompts:
        suites, problems = load_suites(prompts)
    assert problems == []
    days, listed = run_demo(suites, suite="tool_calls", repeat=2, days=[0.0] * 6 + [0.5, 0.5] + [0.0])
    quality = [(i, e.action) for i, d in enumerate(days) for e in d.watch.events if e.kind == "quality"]
    assert quality == [(6, "opened"), (8, "recovered")]
    assert len(days[6].watch.confirmations) == 1  # the breach was confirmed before the alert
    assert days[7].watch.confirmations == []  # no re-confirmation while the alert is open
    [alert] = [a for a in listed if a["kind"] == "quality"]
    assert [m["event"] for m in alert["messages"]] == ["opened", "recovered"]
    assert "pass rate dropped" in alert["messages"][0]["text"]


def test_the_demo_command_runs():
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    assert "alert opened: demo-model · reasoning · quality" in result.output
    assert "alert recovered: demo-model · reasoning · quality" in result.output
