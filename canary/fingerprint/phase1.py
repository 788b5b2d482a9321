"""`canary fingerprint init`: phase 1, finding border inputs and their reference distributions.

1. Screening: candidate single-word prompts (the shipped word list, in its fixed order),
   3 one-token calls each; a prompt with more than one distinct non-empty answer is a
   border candidate. Screening stops once it has POOL_FACTOR x `inputs` candidates (the
   paper's early stop; the first ones in the list's order), or when `candidates` prompts
   were tried.
2. Ranking: each candidate is sampled up to RANK_SAMPLES answers; the `inputs` most
   balanced (second answer's count over the first's) are kept.
3. Reference: each kept input is sampled up to `reference` answers: its distribution (and
   its mean first-token logprobs where the API returns them) is what probes compare to.

The result is stored as a new fingerprint of the model (tables `fingerprints` and
`fingerprint_inputs`), replacing the previous one; an open model_changed alert of the
fingerprint series is closed, since the new reference is the new normal.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .. import alerts
from ..config import Fingerprint, ModelConfig
from ..errors import UsageError
from ..runner import Clock, ProviderFactory, make_provider, utcnow
from ..schema import fingerprint_inputs, fingerprints
from ..store import Store
from . import SUITE
from .calls import Answer, Caller
from .rule import balance, distribution, logprob_means
from .words import candidate_words

SCREEN_CALLS = 3
RANK_SAMPLES = 20
POOL_FACTOR = 3
TOKENS_PER_CALL = (12, 1)  # (input, output) tokens of a one-word chat message, for estimates


class Progress(Protocol):
    def start(self, description: str, total: int) -> None: ...
    def advance(self) -> None: ...


@dataclass
class Estimate:
    calls_max: int  # every candidate screened
    calls_typical: int  # with a quarter of the candidates border inputs (the early stop)
    input_tokens: int
    output_tokens: int
    cost_max: float | None
    cost_typical: float | None


def estimate(model: ModelConfig, cfg: Fingerprint, candidates: int | None = None) -> Estimate:
    n = candidates or cfg.candidates
    pool = POOL_FACTOR * cfg.inputs
    rank = pool * max(RANK_SAMPLES - SCREEN_CALLS, 0) + cfg.inputs * max(cfg.reference - RANK_SAMPLES, 0)
    calls_max = n * SCREEN_CALLS + rank
    calls_typical = min(n, 4 * pool) * SCREEN_CALLS + rank
    tin, tout = TOKENS_PER_CALL
    return Estimate(calls_max, calls_typical, calls_max * tin, calls_max * tout,
                    model.cost(calls_max * tin, calls_max * tout), model.cost(calls_typical * tin, calls_typical * tout))


@dataclass
class Found:
    tried: int = 0  # candidates screened
    border: list[str] = field(default_factory=list)  # candidates with more than one answer
    answers: dict[str, list[str]] = field(default_factory=dict)  # every answer of every candidate kept
    logprobs: dict[str, list] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    empty: int = 0  # answered calls with no visible token (reasoning models)
    errors: int = 0
    calls: int = 0
    temperature: float | None = None
    with_logprobs: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None


class _Null:
    def start(self, description: str, total: int) -> None:
        pass

    def advance(self) -> None:
        pass


async def find_border_inputs(caller: Caller, cfg: Fingerprint, candidates: int, progress: Progress) -> Found:
    found = Found(temperature=caller.temperature)
    words = list(candidate_words()[:candidates])
    target = POOL_FACTOR * cfg.inputs

    def keep(a: Answer) -> None:
        if a.text is not None:
            found.answers.setdefault(a.prompt, []).append(a.text)
            found.empty += a.text == ""
            if a.top_logprobs:
                found.logprobs.setdefault(a.prompt, []).append(a.top_logprobs)

    progress.start(f"screening up to {len(words)} candidate prompts", len(words))
    queue = iter(words)

    async def screen() -> None:
        for word in queue:
            if len(found.border) >= target:
                return
            answers = [await caller.ask(word, i) for i in range(SCREEN_CALLS)]
            found.tried += 1
            progress.advance()
            if any(a.text is None for a in answers):
                continue
            for a in answers:
                keep(a)
            if len(distribution(a.text for a in answers)) > 1:
                found.border.append(word)

    await asyncio.gather(*(screen() for _ in range(caller.model.concurrency)))
    # the first border candidates in the list's order, whatever order the workers finished in (a
    # word is taken before any later one, so those are all screened by the time the pool is full)
    found.border = sorted(found.border, key=words.index)[:target]

    async def top_up(prompts: list[str], n: int, description: str) -> None:
        work = [(p, i) for p in prompts for i in range(len(found.answers.get(p, [])), n)]
        progress.start(description, len(work))
        await caller.ask_all(work, on_answer=lambda a: (keep(a), progress.advance()))

    await top_up(found.border, RANK_SAMPLES, f"ranking {len(found.border)} border candidates")
    ranked = sorted(found.border, key=lambda p: -balance(distribution(found.answers.get(p, []))))
    found.kept = [p for p in ranked if len(distribution(found.answers.get(p, []))) > 1][:cfg.inputs]
    await top_up(found.kept, cfg.reference, f"sampling {len(found.kept)} inputs for their reference")
    found.calls, found.errors = caller.calls, caller.errors
    found.with_logprobs = bool(found.logprobs)
    found.input_tokens, found.output_tokens = caller.input_tokens, caller.output_tokens
    found.cost = caller.cost if caller.model.price else None
    return found


def save(store: Store, model: str, found: Found, now: datetime, *, origin: str = "init",
         border: int | None = None) -> str | None:
    """Store the kept inputs and references as the model's new fingerprint; its version (None: nothing kept)."""
    if not found.kept:
        return None
    version = hashlib.sha256(f"{model}\0{now.isoformat()}\0{origin}\0{found.kept}".encode()).hexdigest()[:16]
    with store.begin() as conn:
        fp_id = conn.execute(fingerprints.insert().values(
            model=model, version=version, origin=origin, created_at=now, temperature=found.temperature,
            logprobs=found.with_logprobs, candidates=found.tried,
            border=len(found.border) if border is None else border, calls=found.calls,
            input_tokens=found.input_tokens, output_tokens=found.output_tokens, cost=found.cost)
            .returning(fingerprints.c.id)).scalar()
        conn.execute(fingerprint_inputs.insert(), [
            {"fingerprint_id": fp_id, "position": i, "prompt": prompt,
             "reference": dict(Counter(distribution(found.answers[prompt]))),
             "logprobs": logprob_means(found.logprobs[prompt]) if found.logprobs.get(prompt) else None}
            for i, prompt in enumerate(found.kept)])
    for alert in store.open_alerts(model, SUITE):  # the new reference is the new normal
        alerts.close_alert(store, alert.id, run_id=None, by="ack", message=None, now=now)
    return version


@dataclass
class InitResult:
    found: Found
    version: str | None
    inputs_wanted: int

    @property
    def too_few(self) -> bool:
        return len(self.found.kept) < max(1, self.inputs_wanted // 2)


async def init(store: Store, model: ModelConfig, *, candidates: int | None = None, clock: Clock = utcnow,
               provider_factory: ProviderFactory = make_provider, progress: Progress | None = None) -> InitResult:
    """Phase 1 for one model: screen, rank, sample references, store; what was found."""
    cfg = model.fingerprint
    if cfg is None:
        raise UsageError(f"model {model.name} has no fingerprint: set `fingerprint: true` on it in canary.yaml")
    provider = provider_factory(model)
    try:
        caller = Caller(provider, model, clock)
        found = await find_border_inputs(caller, cfg, min(candidates or cfg.candidates, len(candidate_words())),
                                         progress or _Null())
    finally:
        await provider.aclose()
    return InitResult(found, save(store, model.name, found, clock()), cfg.inputs)


def summary(result: InitResult, model: str) -> list[str]:
    """What init found, in words: how many border inputs, and what too few means."""
    f = result.found
    lines = [f"{model}: {len(f.border)} border inputs among {f.tried} candidate prompts "
             f"({SCREEN_CALLS} calls each); kept {len(f.kept)} (wanted {result.inputs_wanted}), "
             f"{f.calls} calls, {f.input_tokens:,} input and {f.output_tokens:,} output tokens"
             + (f", ${f.cost:.4f}" if f.cost is not None else "")]
    if f.temperature is None:
        lines.append("The API takes no temperature here: it was probed at its default temperature, where answers "
                     "vary by sampling as well as at true borders; probes use more samples per input to keep "
                     "false alarms rare (see the README).")
    if f.errors:
        lines.append(f"{f.errors} calls failed (service errors, not answers): they were left out.")
    if not f.kept:
        lines.append("No fingerprint was stored: no prompt gave more than one answer. This endpoint cannot be "
                     "fingerprinted this way" + (f" ({f.empty} calls answered no visible token: a reasoning model "
                                                 "spends its one output token on reasoning)" if f.empty else "")
                     + ". Its known-answer suites and the reported model id still watch it.")
    elif result.too_few:
        lines.append(f"Too few border inputs: {len(f.kept)} of {result.inputs_wanted}. The fingerprint is stored, "
                     "but a mean over few inputs is noisy, so only large changes (a different model, not a small "
                     "update) will stand out. Reasoning models and APIs without temperature often have few; "
                     "more `--candidates` may find more.")
    else:
        lines.append(f"Stored as fingerprint {result.version}: probes compare against it from now on "
                     "(`canary fingerprint probe`, or the daemon on the model's schedule).")
    return lines
