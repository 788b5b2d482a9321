"""Several models behind one simulated endpoint, each answering in its own way.

A `Behaviour` is chosen by what a request sends: every field of its `when` must equal the
request body's value (None: the field is absent), e.g. {"model": "claude-opus-4-8"} or, for
two configured models that share a model id, {"model": "m", "reasoning_effort": "low"}. The
first behaviour that matches applies; a request no behaviour matches gets the server's own
knobs. What a behaviour changes:
- wrong_cases: case ids (or "suite/case") whose every sample is answered wrong (a model that
  broke some prompts); the wrong answer is sim_wrong's, one that really fails the asserts.
- wrong_rate: its own share of wrong samples, instead of the server's.
- output_scale: the output tokens it reports, times this, for the same answer (a model that
  thinks less, or a tokenizer that counts differently).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .sim_wrong import wrong_answer
from .suites import Case, Suite


@dataclass(frozen=True)
class Behaviour:
    when: Mapping[str, Any]
    wrong_cases: frozenset[str] = field(default_factory=frozenset)
    wrong_rate: float | None = None
    output_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.wrong_rate is not None and not 0 <= self.wrong_rate <= 1:
            raise ValueError(f"wrong_rate must be between 0 and 1, got {self.wrong_rate}")
        if not self.output_scale > 0:
            raise ValueError(f"output_scale must be positive, got {self.output_scale}")
        object.__setattr__(self, "wrong_cases", frozenset(self.wrong_cases))

    def matches(self, body: Mapping[str, Any]) -> bool:
        return all(body.get(key) == value for key, value in self.when.items())

    def breaks(self, suite: Suite, case: Case) -> bool:
        return case.id in self.wrong_cases or f"{suite.name}/{case.id}" in self.wrong_cases

    def output_tokens(self, tokens: int) -> int:
        return max(1, round(tokens * self.output_scale))


def pick(behaviours: Iterable[Behaviour], body: Mapping[str, Any]) -> Behaviour | None:
    """The first behaviour whose `when` the request body matches."""
    return next((b for b in behaviours if b.matches(body)), None)


def check_breakable(behaviour: Behaviour, suites: Mapping[str, Suite]) -> list[str]:
    """Problems with a behaviour's wrong_cases: ids no suite has, cases no wrong answer can fail."""
    problems = []
    for name in sorted(behaviour.wrong_cases):
        found = [(s, c) for s in suites.values() for c in s.cases if name in (c.id, f"{s.name}/{c.id}")]
        if not found:
            problems.append(f"no suite has a case '{name}'")
        problems += [f"case '{s.name}/{c.id}' has no wrong answer the simulator can give" for s, c in found
                     if wrong_answer(s, c) is None]
    return problems


def distinguishing(model: str, params: Mapping[str, Any], other_model: str,
                   other_params: Mapping[str, Any]) -> dict[str, Any] | None:
    """A `when` that matches one configured model's requests and not the other's: its model
    id, plus every param whose value differs (None: absent); None when nothing differs."""
    keys = set(params) | set(other_params)
    when = {key: params.get(key) for key in sorted(keys) if params.get(key) != other_params.get(key)}
    if model == other_model and not when:
        return None
    return {"model": model, **when}
