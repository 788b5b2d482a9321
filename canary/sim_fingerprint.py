"""The simulated model's fingerprint mode: one-token answers to prompts that are not suite cases.

Every prompt gets a first-token distribution fixed by (seed, prompt): five candidate tokens
and their probabilities at the default temperature. A quarter of the prompts are *border*
prompts: their two likeliest tokens are nearly tied, so at temperature 0 the answer splits
between them (token 1 with probability `split`, as batch-dependent numerics make real
endpoints do); every other prompt answers its likeliest token at temperature 0. Without a
temperature (the Anthropic wire refuses one) answers are drawn from the distribution, at
another temperature from the distribution sharpened or flattened by it. Where a request
asks for logprobs (OpenAI wire) the answer carries the first token's top alternatives:
the log-probabilities plus a little per-call noise (`LOGPROB_NOISE`, an assumption: real
endpoints' noise is their own).

The draws are the simulator's own and reproducible: the n-th request of a prompt draws from a
stream of (seed, prompt, n), so what each prompt is answered does not depend on the order in
which concurrent requests arrive (nor on what other prompts were asked meanwhile).

`model_version` swaps the served model: version 1 is the base, version N >= 2 the base
moved by a swap drawn from (seed, N): every prompt's split between its two likeliest
tokens moves by `swap_split_shift` (up or down; where that flips the likelier token, a
fixed answer changes), and a `swap_token_change` share of the prompts has its likeliest
token replaced by another. A reasoning request (`reasoning_effort` or `thinking`) spends
its one output token on reasoning and answers nothing, as real reasoning models do.
"""
from __future__ import annotations

import hashlib
import math
import random
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

TOKENS = (" The", " I", " A", " It", " This", " Here", " Sure", " What", " H", " Title", " In", " Yes",
          " No", " **", "\n", " #", " Hello", " To", " We", " You", " There", " As", " One", " Of", " That",
          " When", " If", " How", " An", " Word", " Definition", " Meaning", " Let", " So", " Is", " For")
BORDER_SHARE = 0.25
LOGPROB_NOISE = 0.01  # sd, in nats, of the per-call noise on each returned logprob
KNOBS = {"model_version": (1, 10**9), "swap_split_shift": (0, 1), "swap_token_change": (0, 1)}
DEFAULTS = {"model_version": 1, "swap_split_shift": 0.15, "swap_token_change": 0.05}


def _rng(*parts) -> random.Random:
    return random.Random(hashlib.sha256("\0".join(map(str, parts)).encode()).digest())


@dataclass(frozen=True)
class PromptModel:
    """One prompt's first token: candidates, their probabilities at temperature 1, border or not."""

    tokens: tuple[str, ...]
    probs: tuple[float, ...]
    border: bool

    @property
    def split(self) -> float:
        """At temperature 0, how often a border prompt answers tokens[0] rather than tokens[1]."""
        return self.probs[0] / (self.probs[0] + self.probs[1])

    def at_temperature_zero(self) -> tuple[tuple[str, float], ...]:
        if self.border:
            return (self.tokens[0], self.split), (self.tokens[1], 1 - self.split)
        best = max(range(len(self.tokens)), key=lambda i: self.probs[i])
        return ((self.tokens[best], 1.0),)

    def distribution(self, temperature: float | None) -> tuple[tuple[str, float], ...]:
        """(token, probability) of the first output token at a temperature (None: the default, 1)."""
        if temperature == 0:
            return self.at_temperature_zero()
        t = 1.0 if temperature is None else float(temperature)
        weights = [p ** (1 / t) for p in self.probs]
        total = sum(weights)
        return tuple((tok, w / total) for tok, w in zip(self.tokens, weights))


def base_prompt(seed: int, prompt: str) -> PromptModel:
    rnd = _rng("fingerprint", seed, prompt)
    tokens = tuple(rnd.sample(TOKENS, 5))
    border = rnd.random() < BORDER_SHARE
    if border:  # the two likeliest nearly tied at temperature 0
        pair, split = rnd.uniform(0.6, 0.95), rnd.uniform(0.2, 0.8)
        top = [pair * split, pair * (1 - split)]
    else:
        first = rnd.uniform(0.55, 0.97)
        top = [first, (1 - first) * rnd.uniform(0.4, 0.8)]
    rest = 1 - sum(top)
    cuts = sorted(rnd.random() for _ in range(2))
    probs = top + [rest * cuts[0], rest * (cuts[1] - cuts[0]), rest * (1 - cuts[1])]
    return PromptModel(tokens, tuple(probs), border)


def swapped(base: PromptModel, seed: int, version: int, prompt: str, split_shift: float,
            token_change: float) -> PromptModel:
    """The prompt under another model: its split moved by `split_shift`, maybe its top token replaced."""
    rnd = _rng("swap", seed, version, prompt)
    sign = 1 if rnd.random() < 0.5 else -1
    split = min(max(base.split + sign * split_shift, 0.02), 0.98)
    pair = base.probs[0] + base.probs[1]
    probs = (pair * split, pair * (1 - split)) + base.probs[2:]
    tokens = base.tokens
    if rnd.random() < token_change:
        top = max(range(2), key=lambda i: probs[i]) if not base.border else 0
        fresh = rnd.choice([t for t in TOKENS if t not in tokens])
        tokens = tokens[:top] + (fresh,) + tokens[top + 1:]
    return PromptModel(tokens, probs, base.border)


@lru_cache(maxsize=200_000)
def prompt_model(seed: int, version: int, split_shift: float, token_change: float, prompt: str) -> PromptModel:
    base = base_prompt(seed, prompt)
    return base if version <= 1 else swapped(base, seed, version, prompt, split_shift, token_change)


def draw(model: PromptModel, temperature: float | None, rnd: random.Random) -> str:
    r, acc = rnd.random(), 0.0
    dist = model.distribution(temperature)
    for token, p in dist:
        acc += p
        if r < acc:
            return token
    return dist[-1][0]


def top_logprobs(model: PromptModel, k: int, rnd: random.Random) -> list[tuple[str, float]]:
    """The top-k (token, logprob) an API would return: the model's log-probabilities, a little noisy."""
    noisy = [(tok, math.log(p) + rnd.gauss(0, LOGPROB_NOISE)) for tok, p in zip(model.tokens, model.probs)]
    return sorted(noisy, key=lambda x: -x[1])[:k]


def one_token_request(wire: str, body: dict) -> bool:
    """Whether a request asks for exactly one output token (a fingerprint probe's shape)."""
    keys = ("max_tokens",) if wire == "anthropic" else ("max_completion_tokens", "max_tokens")
    return any(body.get(k) == 1 for k in keys)


class FingerprintSim:
    """The answers of the fingerprint mode for one simulator: its knobs and its own random draws."""

    def __init__(self, seed: int):
        self.seed = seed
        self._asked: Counter = Counter()  # requests per prompt so far
        self._lock = threading.Lock()

    def answer(self, wire: str, body: dict, prompt: str, knobs: dict) -> tuple[str, list[tuple[str, float]] | None]:
        """(first token text, top logprobs if asked) for one request."""
        if body.get("reasoning_effort") or body.get("thinking"):
            return "", None  # the one output token went to reasoning
        prompt = prompt.strip()
        model = prompt_model(self.seed, int(knobs["model_version"]), float(knobs["swap_split_shift"]),
                             float(knobs["swap_token_change"]), prompt)
        temperature = body.get("temperature") if wire == "openai" else None
        with self._lock:
            n = self._asked[prompt]
            self._asked[prompt] += 1
        rnd = _rng("draw", self.seed, prompt, n)
        token = draw(model, temperature, rnd)
        k = int(body.get("top_logprobs") or 0) if wire == "openai" and body.get("logprobs") else None
        alternatives = top_logprobs(model, max(k, 1), rnd) if k is not None else None
        return token, alternatives


def with_first_token(wire: str, payload: dict, token: str, alternatives: list[tuple[str, float]] | None) -> dict:
    """A one-token answer in the wire's shape: stopped by the length limit, logprobs where asked."""
    if wire == "anthropic":
        payload["stop_reason"] = "max_tokens"
        return payload
    choice = payload["choices"][0]
    choice["finish_reason"] = "length"
    if alternatives is not None:
        chosen = dict(alternatives).get(token, min(lp for _, lp in alternatives) - 1.0)
        entry = lambda tok, lp: {"token": tok, "logprob": lp, "bytes": list(tok.encode())}  # noqa: E731
        choice["logprobs"] = {"content": [{**entry(token, chosen), "top_logprobs": [
            entry(tok, lp) for tok, lp in alternatives]}], "refusal": None}
    return payload
