"""The simulated model, driven through the official anthropic and openai SDKs over loopback."""
from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import openai
import pytest

from canary import checks
from canary.sim import GENERIC, SimServer
from canary.sim_wrong import wrong_answer
from canary.suites import load_suites

SUITE = r"""
suite: basics
tools:
  - name: get_weather
    description: Current weather for a city
    parameters:
      type: object
      properties: {city: {type: string}, unit: {type: string, enum: [celsius, fahrenheit]}}
      required: [city]
  - name: get_time
    description: Local time in a city
    parameters: {type: object, properties: {city: {type: string}}, required: [city]}
cases:
  - id: capital
    system: Answer in one short sentence.
    prompt: What is the capital of France?
    assert: [{type: icontains, value: paris}]
    reference: {text: The capital of France is Paris.}
  - id: arithmetic
    prompt: "What is 17 * 3? End with ANSWER: <n>"
    answer: {regex: 'ANSWER:\s*(-?\d+)'}
    assert: [{type: number, value: 51}]
    reference: {text: "17 * 3 = 51. ANSWER: 51"}
  - id: weather-paris
    system: You are a weather assistant.
    prompt: What's the weather in Paris, in celsius?
    tools: [get_weather]
    tool_results: {get_weather: {temp_c: 18, sky: cloudy}}
    assert:
      - {type: tool-call, value: {name: get_weather, arguments: {city: Paris, unit: celsius}}}
      - {type: icontains, value: "18"}
    reference:
      tool_calls: [{name: get_weather, arguments: {city: Paris, unit: celsius}}]
      text: It is 18 °C and cloudy in Paris.
  - id: two-cities
    prompt: Weather in Paris and in Rome?
    tools: [get_weather]
    tool_results: {get_weather: {temp_c: 20}}
    assert:
      - {type: tool-call, value: {name: get_weather, arguments: {city: Paris}}}
      - {type: tool-call, value: {name: get_weather, arguments: {city: Rome}}}
      - {type: icontains, value: "24"}
    reference:
      tool_calls: [{name: get_weather, arguments: {city: Paris}}, {name: get_weather, arguments: {city: Rome}}]
      text: Paris has 18 °C and Rome 24 °C.
  - id: time-then-weather
    prompt: What time is it in Tokyo, and what is the weather there?
    tools: [get_time, get_weather]
    tool_results: {get_time: {time: "09:00"}, get_weather: {sky: rain}}
    assert:
      - {type: tool-call, value: {name: get_time, arguments: {city: Tokyo}}}
      - {type: tool-call, value: {name: get_weather, arguments: {city: Tokyo}}}
      - {type: icontains, value: "09:00"}
    reference:
      rounds:
        - [{name: get_time, arguments: {city: Tokyo}}]
        - [{name: get_weather, arguments: {city: Tokyo}}]
      text: It is 09:00 in Tokyo and it is raining.
  - id: no-tool-needed
    prompt: Say hello to the team.
    tools: [get_weather]
    assert: [{type: not-tool-call}]
    reference: {text: "Hello, team!"}
  - id: lowercase-persists
    turns:
      - user: From now on answer in lowercase only. Name the largest planet.
        assert: [{type: icontains, value: jupiter}, {type: not-regex, value: "[A-Z]"}]
        reference: {text: jupiter is the largest planet.}
      - user: And the smallest?
        assert: [{type: icontains, value: mercury}, {type: not-regex, value: "[A-Z]"}]
        reference: {text: mercury is the smallest.}
"""


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    directory = tmp_path_factory.mktemp("prompts")
    (directory / "basics.yaml").write_text(SUITE)
    loaded, problems = load_suites(directory)
    assert problems == []
    return loaded


@pytest.fixture
def suite(suites):
    return suites["basics"]


@pytest.fixture
def make_sim(suites):
    started = []

    def make(**knobs) -> SimServer:
        sim = SimServer(suites, **knobs)
        started.append(sim)
        sim.start()
        return sim

    yield make
    for sim in started:
        sim.stop()


def claude(sim, retries=0, cls=anthropic.Anthropic):
    return cls(api_key="test", base_url=sim.anthropic_url, max_retries=retries, timeout=5)


def gpt(sim, retries=0):
    return openai.OpenAI(api_key="test", base_url=sim.openai_url, max_retries=retries, timeout=5)


def ask(client, case, messages=None, **kw):
    """One Anthropic request for a case (its first prompt unless messages are given)."""
    extra = {"system": case.system} if case.system else {}
    return client.messages.create(model="claude-sim", max_tokens=256, **extra, **kw,
                                  messages=messages or [{"role": "user", "content": case.turns[0].user}])


async def first_turn(client, suite, case) -> bool:
    """A sample's first turn the way the runner plays it (tool rounds fed back); passed?"""
    messages = [{"role": "user", "content": case.turns[0].user}]
    tools = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
             for t in suite.tools_for(case)]
    extra = ({"system": case.system} if case.system else {}) | ({"tools": tools} if tools else {})
    calls = []
    for _ in range(4):
        msg = await client.messages.create(model="claude-sim", max_tokens=256, messages=messages, **extra)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]})
        uses = [b for b in msg.content if b.type == "tool_use"]
        if not uses:
            break
        calls += [{"name": u.name, "arguments": u.input} for u in uses]
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": u.id, "content": json.dumps(case.canned_result(u.name, u.input))}
            for u in uses]})
    reply = checks.TurnReply("".join(b.text for b in msg.content if b.type == "text"), calls, "stop")
    pattern = case.answer.regex if case.answer else None
    return all(v.passed for v in checks.run(case.turns[0].asserts, reply, pattern))


def test_text_answer_both_wires(make_sim, suite):
    sim = make_sim()
    case = suite.case("capital")
    msg = ask(claude(sim), case)
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "The capital of France is Paris."
    assert (msg.stop_reason, msg.model, msg._request_id[:4]) == ("end_turn", "claude-sim", "req_")
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens == 8  # ceil(31 chars / 4)
    done = gpt(sim).chat.completions.create(model="gpt-sim", messages=[
        {"role": "system", "content": case.system}, {"role": "user", "content": case.turns[0].user}])
    assert done.choices[0].message.content == "The capital of France is Paris."
    assert done.choices[0].finish_reason == "stop" and done.model == "gpt-sim"
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    assert done._request_id.startswith("req_")


def test_tool_use_then_final_text(make_sim, suite):
    sim, case = make_sim(), suite.case("weather-paris")
    client = claude(sim)
    first = ask(client, case)
    assert first.stop_reason == "tool_use"
    [use] = first.content
    assert (use.type, use.name, use.input, use.id[:6]) == ("tool_use", "get_weather",
                                                          {"city": "Paris", "unit": "celsius"}, "toolu_")
    messages = [{"role": "user", "content": case.turns[0].user},
                {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18"}]}]
    final = ask(client, case, messages)
    assert final.stop_reason == "end_turn" and final.content[0].text == "It is 18 °C and cloudy in Paris."


def test_parallel_calls_and_two_rounds_openai(make_sim, suite):
    client = gpt(make_sim())
    parallel = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Weather in Paris and in Rome?"}])
    choice = parallel.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert [json.loads(c.function.arguments)["city"] for c in choice.message.tool_calls] == ["Paris", "Rome"]
    assert all(c.id.startswith("call_") and c.type == "function" for c in choice.message.tool_calls)

    messages = [{"role": "user", "content": suite.case("time-then-weather").turns[0].user}]
    seen = []
    for _ in range(3):
        message = client.chat.completions.create(model="m", messages=messages).choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            break
        seen += [c.function.name for c in message.tool_calls]
        messages += [{"role": "tool", "tool_call_id": c.id, "content": "{}"} for c in message.tool_calls]
    assert seen == ["get_time", "get_weather"]
    assert message.content == "It is 09:00 in Tokyo and it is raining."


def test_multi_turn(make_sim, suite):
    client, turns = gpt(make_sim()), suite.case("lowercase-persists").turns
    messages = [{"role": "user", "content": turns[0].user}]
    first = client.chat.completions.create(model="m", messages=messages).choices[0].message.content
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": turns[1].user}]
    second = client.chat.completions.create(model="m", messages=messages).choices[0].message.content
    assert (first, second) == ("jupiter is the largest planet.", "mercury is the smallest.")


def test_thinking_block_latency_and_reported_model(make_sim, suite):
    sim = make_sim(thinking=True, latency=0.05, reported_model="claude-sim-20260101")
    started = time.monotonic()
    msg = ask(claude(sim), suite.case("capital"))
    assert time.monotonic() - started >= 0.05
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking and msg.content[0].signature
    assert msg.model == "claude-sim-20260101"


def test_unknown_prompt_gets_a_polite_answer(make_sim):
    msg = claude(make_sim()).messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi?"}])
    assert msg.content[0].text == GENERIC and msg.stop_reason == "end_turn"


def test_wrong_rate_is_reproducible_and_wrong_answers_fail(make_sim, suite):
    def run(seed):
        sim = make_sim(wrong_rate=0.3, seed=seed)

        async def all_samples():
            client, gate = claude(sim, cls=anthropic.AsyncAnthropic), asyncio.Semaphore(16)

            async def one(case):
                async with gate:
                    return await first_turn(client, suite, case)
            return await asyncio.gather(*(one(suite.cases[i % len(suite.cases)]) for i in range(200)))
        return sum(not passed for passed in asyncio.run(all_samples()))

    draws = random.Random(7)  # the sim draws once per sample, whatever the order of the requests
    drawn = sum(draws.random() < 0.3 for _ in range(200))
    assert run(7) == run(7) == drawn
    assert 40 <= drawn <= 80


def test_wrong_answers_are_realistic(suite):
    assert wrong_answer(suite, suite.case("capital")) == ("The capital of France is London.", [])
    assert wrong_answer(suite, suite.case("arithmetic")) == ("28 * 4 = 62. ANSWER: 62", [])
    assert wrong_answer(suite, suite.case("weather-paris"))[1] == [
        {"name": "get_weather", "arguments": {"city": "London", "unit": "celsius"}}]
    assert wrong_answer(suite, suite.case("no-tool-needed"))[1][0]["name"] == "get_weather"


def test_overloaded_case_fails_after_sdk_retries(make_sim, suite):
    sim = make_sim(error_rate=1.0)
    with pytest.raises(anthropic.OverloadedError) as caught:
        ask(claude(sim, retries=2), suite.case("capital"))
    assert caught.value.status_code == 529 and caught.value.request_id.startswith("req_")
    assert caught.value.type == "overloaded_error"
    assert len(sim.requests) == 3
    with pytest.raises(openai.InternalServerError) as caught:
        gpt(sim, retries=1).chat.completions.create(model="m", messages=[{"role": "user", "content": "Say hello to the team."}])
    assert caught.value.status_code == 529 and caught.value.request_id.startswith("req_")
    assert len(sim.requests) == 5
    sim.configure(error_rate=0.0)  # a running server recovers
    assert ask(claude(sim), suite.case("capital")).content[0].text.endswith("Paris.")


def test_error_rate_is_a_share_of_cases(make_sim, suite):
    def failing(sim):
        out, client = set(), claude(sim)
        for case in suite.cases:
            try:
                ask(client, case)
            except anthropic.RateLimitError:
                out.add(case.id)
        return out
    first = failing(make_sim(error_rate=0.5, error_status=429, seed=3))
    assert len(first) == 4  # round(0.5 * 7)
    assert failing(make_sim(error_rate=0.5, error_status=429, seed=3)) == first


def test_flaky_requests_recovered_by_retries(make_sim, suite):
    sim = make_sim(flaky_rate=1.0)  # every first attempt fails once
    client = claude(sim, retries=1)
    for case in suite.cases[:3]:
        assert ask(client, case).content
    assert len(sim.requests) == 6
    with pytest.raises(anthropic.OverloadedError):
        ask(claude(sim, retries=0), suite.case("capital"))


def test_auth_and_bad_requests(make_sim, suite):
    sim = make_sim()
    with pytest.raises(anthropic.AuthenticationError):
        ask(claude(sim, retries=2), suite.case("capital"), extra_headers={"Authorization": anthropic.omit})
    with pytest.raises(openai.AuthenticationError):
        gpt(sim).chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}],
                                         extra_headers={"Authorization": openai.omit})
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        ask(claude(sim, retries=2), suite.case("capital"), extra_body={"temperature": 0})
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        claude(sim).messages.create(model="m", max_tokens=anthropic.omit, messages=[{"role": "user", "content": "Hi"}])
    assert len(sim.requests) == 4  # 4xx are not retried


def test_requests_log_shows_what_was_sent(make_sim, suite):
    sim = make_sim()
    claude(sim).messages.create(model="claude-sim", max_tokens=321, system="S",
                                messages=[{"role": "user", "content": "Hi"}])
    gpt(sim).chat.completions.create(model="gpt-sim", messages=[{"role": "user", "content": "Hi"}])
    (path_a, body_a), (path_o, body_o) = sim.requests
    assert path_a == "/v1/messages" and body_a["max_tokens"] == 321 and body_a["system"] == "S"
    assert "temperature" not in body_a
    assert path_o == "/v1/chat/completions" and body_o["model"] == "gpt-sim"


def test_stop_is_prompt_with_kept_alive_connections(suites, suite):
    sim = SimServer(suites)
    with sim:
        client = claude(sim)
        ask(client, suite.case("capital"))  # leaves a pooled keep-alive connection open
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    with pytest.raises(anthropic.APIConnectionError):
        ask(client, suite.case("capital"))


def test_serve_runs_until_sigterm(tmp_path):
    (tmp_path / "basics.yaml").write_text(SUITE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("from pathlib import Path; from canary.suites import load_suites; from canary.sim import serve; "
            f"serve(load_suites(Path({str(tmp_path)!r}))[0], {port})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1],
                            stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the simulator did not start"
                time.sleep(0.05)
        client = anthropic.Anthropic(api_key="test", base_url=f"http://127.0.0.1:{port}", max_retries=0, timeout=5)
        assert client.messages.create(model="m", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]).content
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert f"http://127.0.0.1:{port}" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
