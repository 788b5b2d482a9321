"""Broken and hostile files, as `canary validate` and `canary run` meet them: one `path:line:
message` each and exit 2, never a traceback or a hang; warnings exit 0 unless --strict."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from canary import yamlfile
from canary.cli import main


@pytest.fixture
def project(tmp_path):
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    return tmp_path


def canary(project, *args):
    return CliRunner().invoke(main, [args[0], "--config", str(project / "canary.yaml"), *args[1:]])


def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"  # 10 lines that expand to 9^10 = 3.5 billion strings


HOSTILE = {  # name: (bytes of prompts/zz.yaml, line, message)
    "alias bomb": (billion_laughs().encode(), 1, "expands to more than 100,000 values through its aliases"),
    "latin-1": ("suite: x\ncases:\n  - id: caf\xe9\n".encode("latin-1"), 3, "not UTF-8 text (byte 0xe9)"),
    "binary": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, 1, "not UTF-8 text (byte 0x89)"),
    "control bytes": (b"suite: x\n\x00\x01\x02garbage\n", 2, "not a text file: control character #x00"),
    "deep flow nesting": (b"[" * 20000, 1, "invalid YAML: nested more than 64 levels deep"),
    "deep block nesting": ("".join("  " * i + "a:\n" for i in range(100)).encode(), 65,
                           "invalid YAML: nested more than 64 levels deep"),
    "recursive alias": (b"suite: &a [*a]\n", 1, "nested more than 64 levels deep (an alias inside itself?)"),
    "huge number": (b"suite: x\nrepeat: " + b"9" * 5000 + b"\n", 2, "Exceeds the limit (4300 digits)"),
    "impossible date": (b"suite: x\ndescription: 2026-13-45\n", 2, "cannot read '2026-13-45': month must be in 1..12"),
    "python tag": (b"suite: !!python/object:os.system ls\n", 1, "could not determine a constructor"),
    "list as key": (b"? [a, b]\n: c\n", 1, "a key must be a plain value"),
    "too large": (b"# " + b"x" * yamlfile.MAX_FILE_BYTES + b"\n", 1, "larger than 1024 KiB"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_suite_file_is_one_line_and_exit_2(project, name):
    data, line, message = HOSTILE[name]
    path = project / "prompts" / "zz.yaml"
    path.write_bytes(data)
    result = canary(project, "validate")
    assert result.exit_code == 2, result.output
    [problem] = [ln for ln in result.output.splitlines() if str(path) in ln]
    assert problem.startswith(f"{path}:{line}: ") and message in problem, problem
    assert "Traceback" not in result.output


def test_a_suite_that_does_not_load_makes_run_exit_2_after_running_the_others(project):
    (project / "prompts" / "zz.yaml").write_bytes(HOSTILE["alias bomb"][0])
    result = canary(project, "run", "--sim", "--model", "gpt", "--suite", "reasoning", "--repeat", "1", "--json")
    assert result.exit_code == 2, result.output
    assert "zz.yaml:1: expands to more than" in result.stderr
    import json
    [run] = json.loads(result.stdout)["runs"]  # the good suite ran and was stored
    assert (run["suite"], run["passed"]) == ("reasoning", 21)


@pytest.mark.parametrize("config, line, message", [
    ('schedule: "0 0 31 2 *"\n', 1, "'0 0 31 2 *' never fires"),
    ("models:\n  - {name: a, provider: openai, model: m, schedule: '0 6 30 2 *'}\n", 2, "never fires"),
    ("daemon: {http: localhost}\n", 1, "daemon.http 'localhost' is not host:port"),
    ("daemon:\n  http: '127.0.0.1:99999'\n", 2, "port out of range"),
    ("", 1, "the config file is empty"),
    ("# only a comment\n", 1, "the config file is empty"),
])
def test_validate_rejects_what_would_never_work(project, config, line, message):
    path = project / "canary.yaml"
    path.write_text(config)
    result = canary(project, "validate")
    assert result.exit_code == 2 and f"{path}:{line}: " in result.output and message in result.output, result.output
    assert "Traceback" not in result.output


NO_REFERENCE = """\
suite: promptfoo-style
cases:
  - id: open-question
    prompt: Write a haiku about canaries.
    assert: [{type: word-count, value: {min: 5, max: 30}}]
"""


def test_a_case_without_reference_is_a_warning_in_validate_and_run_and_an_error_when_strict(project):
    path = project / "prompts" / "open.yaml"
    path.write_text(NO_REFERENCE)
    warning = f"{path}:3: case open-question: warning: no reference"
    checked = canary(project, "validate")
    assert checked.exit_code == 0 and warning in checked.stderr and "1 warning(s)" in checked.stdout
    strict = canary(project, "validate", "--strict")
    assert strict.exit_code == 2 and warning in strict.output
    ran = canary(project, "run", "--sim", "--model", "gpt", "--suite", "promptfoo-style", "--json")
    assert ran.exit_code == 0 and warning in ran.stderr  # it runs (the simulator has no answer: it fails)


def test_validate_warns_about_a_regex_that_would_time_out_on_a_long_reply(project):
    path = project / "prompts" / "slow.yaml"
    path.write_text("suite: slow\ncases:\n  - id: a\n    prompt: Say a.\n"
                    "    assert: [{type: regex, value: '(a|aa)+$'}]\n    reference: {text: aaa}\n")
    result = canary(project, "validate")
    assert result.exit_code == 0, result.output
    [line] = [ln for ln in result.stderr.splitlines() if "slow.yaml" in ln]
    assert line.startswith(f"{path}:3: case a: warning: regex /(a|aa)+$/ runs out of its 1 s on a synthetic "
                           "reply of 100,000 characters ('a' x 99,999 then '!')")
    assert canary(project, "validate", "--strict").exit_code == 2


def test_a_loaded_file_leaves_nothing_behind_and_keeps_yaml_types(tmp_path):
    """Scalars keep YAML's own types (a quoted number stays text), and the shared scalar
    constructor forgets each node it built (a daemon reloads its files for months)."""
    path = tmp_path / "doc.yaml"
    path.write_text("a: x\nb: '1'\nc: 1\nd: yes\ne: null\nf: |\n  two\n  lines\ng: 2.5\n")
    doc = yamlfile.load(path)
    assert doc.data == {"a": "x", "b": "1", "c": 1, "d": True, "e": None, "f": "two\nlines\n", "g": 2.5}
    assert doc.where(("f",)) == f"{path}:6"
    assert not yamlfile._SCALARS.constructed_objects
