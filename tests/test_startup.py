"""Start-up cost: a command imports what it needs and nothing more (issue: read side and start-up).

Each check runs a fresh interpreter and lists the modules it loaded, so an import added at
the top of a module that every command loads fails here, not in a benchmark months later.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from canary.dbapi import head_revisions

HEAVY = ("sqlalchemy", "numpy", "scipy", "alembic", "rich", "pydantic", "jsonschema", "apscheduler",
         "anthropic", "openai", "slack_sdk", "prometheus_client", "yaml")
NEVER_FOR_READS = ("numpy", "scipy", "alembic", "anthropic", "openai", "slack_sdk", "prometheus_client",
                   "pydantic")  # the config and the suites are read by canary.strict


def loaded_after(args: list[str], cwd) -> set[str]:
    """Top-level packages loaded by `canary ARGS` in a fresh process (it exits as the command does)."""
    code = ("import sys, json, atexit\n"
            "atexit.register(lambda: print('MODULES=' + json.dumps(sorted({m.split('.')[0] for m in sys.modules}))))\n"
            "from canary.cli import main\n"
            f"sys.argv = ['canary'] + {args!r}\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("MODULES=")), None)
    assert line, out.stdout + out.stderr
    return set(json.loads(line.removeprefix("MODULES=")))


def test_version_imports_no_heavy_library(tmp_path):
    assert not loaded_after(["--version"], tmp_path) & set(HEAVY)


@pytest.mark.parametrize("command", [["validate"], ["status"], ["alerts"]])
def test_read_commands_load_no_sdk_numpy_alembic_or_pydantic(tmp_path, command):
    from click.testing import CliRunner
    from canary.cli import main
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    assert CliRunner().invoke(main, ["db", "upgrade", "--config", str(tmp_path / "canary.yaml")]).exit_code == 0
    assert not loaded_after(command + ["--config", str(tmp_path / "canary.yaml")], tmp_path) & set(NEVER_FOR_READS)


@pytest.mark.parametrize("fingerprinted", [False, True])
def test_status_history_and_report_do_not_load_sqlalchemy_pydantic_or_jsonschema(tmp_path, fingerprinted):
    """On a database at the current schema, the commands that read a series go through the
    driver alone (dbapi.Reader): SQLAlchemy's import would cost them more than their reads.
    A model with a fingerprint too: its series is read the same way. The starter suites'
    JSON Schemas are checked against their metaschema only by the commands that send them."""
    from click.testing import CliRunner
    from canary.cli import main
    from canary.config import load_config
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    config = tmp_path / "canary.yaml"
    if fingerprinted:
        text = config.read_text()
        config.write_text(text.replace("    concurrency: 8\n", "    concurrency: 8\n    fingerprint: true\n", 1))
        assert load_config(config).models[0].fingerprint is not None
    assert CliRunner().invoke(main, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    model = load_config(config).models[0].name
    suite = "fingerprint" if fingerprinted else sorted(tmp_path.joinpath("prompts").glob("*.yaml"))[0].stem
    report = ["report", "--out", str(tmp_path / "r.html")]
    commands = [["status"], ["history", "--model", model, "--suite", suite], report, ["failures", "--model", model],
                ["alerts"]]
    for command in commands + ([["fingerprint", "status"]] if fingerprinted else []):
        args = command + ["--config", str(config)]
        assert not loaded_after(args, tmp_path) & {"sqlalchemy", "pydantic", "jsonschema"}, command
        assert CliRunner().invoke(main, args).exit_code == 0, command


def test_head_revision_read_from_the_scripts_is_alembics():
    from alembic.script import ScriptDirectory
    from canary.store import alembic_config
    assert head_revisions() == set(ScriptDirectory.from_config(alembic_config()).get_heads())
