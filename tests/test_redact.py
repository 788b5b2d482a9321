"""One redaction for everything canary writes: what it hides, what it leaves alone, and an API
that echoes the key, end to end through `canary run` and `canary export`."""
from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from canary import redact
from canary.cli import main
from canary.sim import SimServer
from canary.suites import load_suites


@pytest.mark.parametrize("text, hidden, kept", [
    ("invalid x-api-key: sk-ant-api03-AbCdEf0123456789xyz", "sk-ant-api03-AbCdEf0123456789xyz", "invalid x-api-key: ***"),
    ("Incorrect API key provided: sk-proj-0123456789abcdefABCD.", "sk-proj-0123456789abcdefABCD", "provided: ***."),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9", "Authorization: Bearer ***"),
    ('{"api_key": "gw-live-7f3a9c2e11"}', "gw-live-7f3a9c2e11", '"api_key": "***"'),
    ("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXX failed", "T000/B000/XXXXXXXX",
     "https://hooks.slack.com/*** failed"),
    ("token xoxb-123456789012-abcdefABCDEF refused", "xoxb-123456789012", "token *** refused"),
    ("cannot connect to postgresql+psycopg://canary:s3cr3t-pw@db:5432/canary", "s3cr3t-pw", "canary:***@db"),
    # the case-insensitive shapes also match a dotless or dotted capital i, which lowercases to something else
    ("authorızation: abcdefgh12345678", "abcdefgh12345678", "authorızation: ***"),
    ("APİ_KEY=abcdefgh12345678", "abcdefgh12345678", "APİ_KEY=***"),
])
def test_credential_shapes_are_hidden_whoever_wrote_them(text, hidden, kept):
    out = redact.text(text)
    assert hidden not in out and kept in out


@pytest.mark.parametrize("text", [
    "A task-management tool, a skeleton key, the bearer of bad news.",
    "Use the api_key parameter.", "sk-short", "ANSWER: 42 (6 x 7)",
])
def test_ordinary_text_is_left_alone(text):
    assert redact.text(text) == text


def test_remembered_values_are_hidden_inside_json_values_keys_included():
    redact.remember(["not-key-shaped-but-secret", "short"])  # under 6 characters: too common to hide
    value = {"turns": [{"text": "my not-key-shaped-but-secret, short", "not-key-shaped-but-secret": 1}]}
    assert redact.value(value) == {"turns": [{"text": "my ***, short", "***": 1}]}


SUITE = """\
suite: basics
cases:
  - id: capital
    prompt: What is the capital of France?
    assert: [{type: icontains, value: paris}]
    reference: {text: Paris.}
"""


def test_a_key_echoed_by_the_api_is_never_stored_or_exported(tmp_path, db_url):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "basics.yaml").write_text(SUITE)
    suites, _ = load_suites(tmp_path / "prompts")
    keys = {"TEST_GATEWAY_CREDENTIAL": "gw-7f3a9c2e11d04b5a",  # not key-shaped: hidden as a configured value
            "TEST_OPENAI_KEY": "sk-proj-0123456789abcdefABCDEFxyz"}
    with SimServer(suites, fault="echo_key") as sim:
        (tmp_path / "canary.yaml").write_text(textwrap.dedent(f"""\
            database: {db_url}
            models:
              - {{name: claude, provider: anthropic, model: m, base_url: '{sim.url}',
                  api_key_env: TEST_GATEWAY_CREDENTIAL}}
              - {{name: gpt, provider: openai, model: g, base_url: '{sim.url}/v1', api_key_env: TEST_OPENAI_KEY}}
            """))
        config = ["--config", str(tmp_path / "canary.yaml")]
        ran = CliRunner().invoke(main, ["run", *config, "--json"], env=keys)
        assert sim.requests  # the keys really went to the API, which echoed them back
    assert ran.exit_code == 3, ran.output  # nothing answered: the service-down exit code
    exported = CliRunner().invoke(main, ["export", *config], env=keys)
    assert exported.exit_code == 0
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert {(r["model"], r["error"], r["error_status"]) for r in records} == {("claude", "auth", 401), ("gpt", "auth", 401)}
    assert {r["error_message"] for r in records} == {
        "HTTP 401 authentication_error: invalid x-api-key: ***",
        "HTTP 401: Incorrect API key provided: ***. You can find your API key at "
        "https://platform.openai.com/account/api-keys."}
    from canary.store import Store
    store = Store(db_url)  # the rows themselves, not just what export prints
    with store.begin() as conn:
        stored = json.dumps([list(r) for r in conn.exec_driver_sql("SELECT * FROM samples")], default=str)
    store.close()
    for secret in keys.values():
        assert secret not in ran.output + exported.output + stored


def test_log_records_go_through_the_same_redaction():
    import logging
    from canary import logs
    record = logging.makeLogRecord({"msg": "call failed: %s", "args": ("invalid x-api-key: sk-ant-api03-Zz9Yy8Xx7Ww6Vv5",)})
    logs.RedactSecrets().filter(record)  # a key nobody configured: hidden by its shape
    assert record.getMessage() == "call failed: invalid x-api-key: ***"


def test_the_json_shortcut_stores_what_the_walk_stores(monkeypatch):
    """storable looks at a sample's turns as one JSON text and walks them only when that text
    shows something to change: whatever the value, it stores what the walk alone stores."""
    from canary import storable
    monkeypatch.setattr(redact, "REDACTOR", redact.Redactor())
    values = [
        [{"user": "q", "text": "391", "verdicts": [{"passed": True, "n": 2 ** 70}]}],
        [{"user": "q", "text": "a\x00b"}], [{"user": "q", "text": "x\ud800y"}], [{"x": float("nan")}],
        [{"user": "q", "text": "Bearer abcdefghijklmnop1234"}], [{"text": "authorızation: abcdefgh12345678"}],
        [{"sk-ant-0123456789abcdefghij": 1}], {"k": ["a", 'use {"api_key": "gw-7f3a9c2e11d0"}']},
        [{"user": "a backslash and u0000: \\u0000"}], {"t": ("in", "a tuple")}, [{"t": "nothing here"}],
        [{"t": 'x pa"ss\\word1 y'}],
    ]

    def stored(clean):  # as the JSON column writes it
        return [json.dumps(clean(v)) for v in values]
    assert stored(storable._clean_json) == stored(storable._clean)
    assert "***" in stored(storable._clean_json)[4]  # the Bearer token
    redact.remember(["gw-credential-7f3a9c2e", 'pa"ss\\word1'])  # the second one JSON escapes
    assert stored(storable._clean_json) == stored(storable._clean)
    assert storable._clean_json(values[-1]) == [{"t": "x *** y"}]


def test_storable_cleans_each_text_an_api_wrote():
    """The texts beside the turns are looked at together first; each one that needs it is still
    redacted or repaired on its own, and the others are left as they are."""
    from canary.storable import storable
    row = {"run_id": 1, "error_message": "bad key sk-ant-0123456789abcdefghij", "request_id": "req\x00id",
           "reported_model": "m\ud800", "finish_reason": "stop", "turns": []}
    assert storable(row) == {**row, "error_message": "bad key ***", "request_id": "req\ufffdid",
                             "reported_model": "m\ufffd"}
    clean = {"run_id": 1, "error_message": None, "request_id": "req_1", "reported_model": "m-1", "turns": []}
    assert storable(clean) == {**clean, "finish_reason": None}


@pytest.mark.parametrize("url, password", [
    ("postgresql+psycopg://canary:s3cret#pw9@db/canary", "s3cret#pw9"),  # "#", "?", "/" unencoded, as SQLAlchemy
    ("postgresql://canary:a?b/c-pw9@db:5432/canary", "a?b/c-pw9"),     # reads them: up to the "@"
    ("postgresql+psycopg://u:p%40ss-word@h/db", "p@ss-word"),           # percent-decoded, as the driver gets it
    ("postgresql://admin@myserver:S3cretPw1@myserver.example.com/db", "S3cretPw1"),  # user@server (Azure)
    ("postgresql://u@h/db", None), ("sqlite:///canary.db", None), ("not a url", None),
])
def test_the_database_password_is_found_and_hidden_as_sqlalchemy_reads_the_url(url, password):
    from sqlalchemy.engine import make_url
    assert redact.database_password(url) == password
    if password is not None:
        assert make_url(url).password == password
        as_written = url[url.index(":", url.index("://") + 3) + 1:url.rindex("@")]  # percent-encoded or not
        assert redact.hide_password(url) == url.replace(f":{as_written}@", ":***@", 1)
