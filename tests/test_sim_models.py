"""Several models behind one simulated endpoint, told apart by what they send (official SDKs)."""
from __future__ import annotations

import anthropic
import openai
import pytest

from canary import checks
from canary.sim import SimServer
from canary.sim_models import Behaviour, check_breakable, distinguishing, pick
from canary.suites import load_suites
from test_sim import SUITE  # the simulator's own test suite


@pytest.fixture
def suites(tmp_path):
    (tmp_path / "basics.yaml").write_text(SUITE)
    loaded, problems = load_suites(tmp_path)
    assert problems == []
    return loaded


def passes(suites, case_id: str, text: str) -> bool:
    case = suites["basics"].case(case_id)
    reply = checks.TurnReply(text, [], "stop")
    return all(v.passed for v in checks.run(case.turns[0].asserts, reply, case.answer.regex if case.answer else None))


def test_a_model_that_broke_a_case_and_thinks_less_beside_one_that_did_not(suites):
    candidate = Behaviour(when={"model": "claude-opus-4-8"}, wrong_cases={"capital"}, output_scale=0.5)
    with SimServer(suites, models=(candidate,)) as sim:
        client = anthropic.Anthropic(api_key="k", base_url=sim.anthropic_url, max_retries=0, timeout=5)
        answers = {}
        for model in ("claude-opus-4-7", "claude-opus-4-8"):
            for case in map(suites["basics"].case, ("capital", "arithmetic")):
                system = {"system": case.system} if case.system else {}
                msg = client.messages.create(model=model, max_tokens=64, **system,
                                             messages=[{"role": "user", "content": case.turns[0].user}])
                answers[model, case.id] = (msg.content[0].text, msg.usage.output_tokens)
    assert passes(suites, "capital", answers["claude-opus-4-7", "capital"][0])
    assert not passes(suites, "capital", answers["claude-opus-4-8", "capital"][0])  # broken, every time
    assert passes(suites, "arithmetic", answers["claude-opus-4-8", "arithmetic"][0])
    # the same answer, half the output tokens
    old, new = answers["claude-opus-4-7", "arithmetic"], answers["claude-opus-4-8", "arithmetic"]
    assert old[0] == new[0] and new[1] == round(old[1] * 0.5)


def test_one_model_id_with_two_efforts_is_two_models(suites):
    low = Behaviour(when=distinguishing("gpt-x", {"reasoning_effort": "low"}, "gpt-x", {"reasoning_effort": "high"}),
                    wrong_rate=1.0)
    with SimServer(suites, models=(low,)) as sim:
        client = openai.OpenAI(api_key="k", base_url=sim.openai_url, max_retries=0, timeout=5)
        texts = {}
        for effort in ("high", "low"):
            done = client.chat.completions.create(model="gpt-x", reasoning_effort=effort, messages=[
                {"role": "user", "content": suites["basics"].case("arithmetic").turns[0].user}])
            texts[effort] = done.choices[0].message.content
    assert passes(suites, "arithmetic", texts["high"]) and not passes(suites, "arithmetic", texts["low"])


def test_what_tells_two_configured_models_apart():
    assert distinguishing("m", {"max_tokens": 9}, "m", {"max_tokens": 9}) is None
    assert distinguishing("m", {}, "m", {"effort": "high"}) == {"model": "m", "effort": None}  # absent
    assert distinguishing("b", {"x": 1}, "a", {"x": 1}) == {"model": "b"}
    first = Behaviour(when={"model": "m", "effort": None})
    assert pick([first], {"model": "m"}) is first and pick([first], {"model": "m", "effort": "high"}) is None


def test_a_case_to_break_must_exist_and_be_breakable(suites):
    assert check_breakable(Behaviour(when={}, wrong_cases={"capital", "basics/arithmetic"}), suites) == []
    assert check_breakable(Behaviour(when={}, wrong_cases={"nope"}), suites) == ["no suite has a case 'nope'"]
    with pytest.raises(ValueError):
        Behaviour(when={}, output_scale=0)
