"""Every YAML block in the README loads: suite files as suites (their references passing their
own asserts), everything else as canary.yaml. A README example that does not work is a bug."""
from __future__ import annotations

import re
import shutil

import pytest
import yaml

from canary.config import load_config
from canary.suites import load_suite, reference_problems
from conftest import REPO

BLOCKS = re.findall(r"^```yaml\n(.*?)^```", (REPO / "README.md").read_text(encoding="utf-8"), re.M | re.S)


def test_the_readme_has_yaml_blocks_and_every_one_parses():
    assert len(BLOCKS) >= 4
    for block in BLOCKS:
        assert isinstance(yaml.safe_load(block), dict), block[:200]


@pytest.mark.parametrize("block", [b for b in BLOCKS if "suite" in yaml.safe_load(b)],
                         ids=lambda b: yaml.safe_load(b)["suite"])
def test_each_suite_example_is_a_valid_suite_whose_references_pass(block, tmp_path):
    path = tmp_path / "example.yaml"
    path.write_text(block)
    suite = load_suite(path)  # raises ConfigError with path:line problems if it is not valid
    assert suite.cases and reference_problems(suite) == []


@pytest.mark.parametrize("block", [b for b in BLOCKS if "suite" not in yaml.safe_load(b)],
                         ids=lambda b: ",".join(yaml.safe_load(b))[:40])
def test_each_config_example_is_a_valid_config(block, tmp_path):
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    (tmp_path / "canary.yaml").write_text(block)
    config = load_config(tmp_path / "canary.yaml")
    assert config.models or "models" not in yaml.safe_load(block)


def test_the_quoting_advice_holds():
    """The README says to quote a value holding `: `: unquoted, its first example's system line is invalid YAML."""
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("system: Finish with a final line of the form `ANSWER: <answer>`.\n")
    assert 'system: "Finish with a final line of the form `ANSWER: <answer>`."' in BLOCKS[1]
