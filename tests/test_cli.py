"""The command line as a user meets it: exit codes, messages without tracebacks, init, --sim."""
from __future__ import annotations

import json
from importlib import resources

import pytest
from click.testing import CliRunner

from canary.cli import main


@pytest.fixture
def project(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "canary.yaml").exists() and len(list((tmp_path / "prompts").glob("*.yaml"))) == 3
    return tmp_path


def canary(project, *args, env=None):
    command = list(args[:1]) + ["--config", str(project / "canary.yaml")] + list(args[1:])
    return CliRunner().invoke(main, command, env=env or {})


def test_init_never_overwrites(project):
    result = CliRunner().invoke(main, ["init", str(project)])
    assert result.exit_code == 2 and "already exists" in result.output and "Traceback" not in result.output


def test_the_starter_config_is_the_repos(project):
    from conftest import REPO
    assert (project / "canary.yaml").read_text() == (REPO / "canary.yaml").read_text()
    shipped = resources.files("canary.prompts")
    assert sorted(p.name for p in (REPO / "prompts").glob("*.yaml")) == \
        sorted(p.name for p in shipped.iterdir() if p.name.endswith(".yaml"))


def test_validate_passes_then_reports_a_broken_suite_with_its_line(project):
    assert canary(project, "validate").exit_code == 0
    broken = project / "prompts" / "broken.yaml"
    broken.write_text("suite: broken\ncases:\n  - id: a\n    prompt: hi\n    assert: [{type: contans, value: x}]\n")
    result = canary(project, "validate")
    assert result.exit_code == 2
    assert f"{broken}:5: assert: unknown assertion type 'contans'" in result.output
    assert "Traceback" not in result.output


def test_run_with_the_simulator_stores_everything_and_prints_json(project):
    result = canary(project, "run", "--sim", "--model", "gpt", "--suite", "reasoning", "--repeat", "1", "--json")
    assert result.exit_code == 0, result.output
    [run] = json.loads(result.stdout)["runs"]
    assert (run["model"], run["suite"], run["passed"], run["errors"]) == ("gpt", "reasoning", 21, 0)
    exported = canary(project, "export", "--sim", "--model", "gpt")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(lines) == 21 and all(r["status"] == "passed" for r in lines)
    # simulated runs never enter the real database
    assert (project / "canary-sim.db").exists()
    assert canary(project, "export", "--model", "gpt").stdout == ""


def test_every_starter_suite_scores_the_simulated_wrong_rate(project):
    result = canary(project, "run", "--sim", "--model", "claude-opus", "--repeat", "8",
                    "--sim-wrong-rate", "0.3", "--json")
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 3
    for run in runs:  # ~30% of samples fail, on every suite (binomial noise at n >= 120)
        assert run["errors"] == 0 and 0.18 <= 1 - run["pass_rate"] <= 0.42, run


def test_no_sample_answered_exits_3(project):
    result = canary(project, "run", "--sim", "--model", "gpt", "--suite", "tool_calls", "--repeat", "1",
                    "--sim-error-rate", "1.0", "--json")
    assert result.exit_code == 3
    [run] = json.loads(result.stdout)["runs"]
    assert run["errors"] == 16 and run["pass_rate"] is None


def test_usage_errors_exit_2_without_traceback(project, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    unknown = canary(project, "run", "--model", "nope")
    assert unknown.exit_code == 2 and "unknown model 'nope' (configured: claude-opus, gpt)" in unknown.output
    no_key = canary(project, "run", "--model", "gpt", env={"OPENAI_API_KEY": ""})
    assert no_key.exit_code == 2 and "$OPENAI_API_KEY is not set" in no_key.output
    assert "Traceback" not in unknown.output + no_key.output


def test_db_upgrade_and_a_missing_config(project, tmp_path_factory):
    upgraded = CliRunner().invoke(main, ["db", "upgrade", "--config", str(project / "canary.yaml")])
    assert upgraded.exit_code == 0 and "current schema" in upgraded.output
    empty = tmp_path_factory.mktemp("empty")
    result = CliRunner().invoke(main, ["validate", "--config", str(empty / "canary.yaml")])
    assert result.exit_code == 2 and "canary init" in result.output
