"""One-token calls: a single-word prompt, the first output token, its logprobs where returned.

The provider adapter says how its API asks for one output token (`one_token_params`): the
model's `params` as configured with the output limited to one token, plus what the API
takes on top (temperature 0, logprobs). If the endpoint refuses those extras (a 400), the
calls go on without them, said once in the log. Each call becomes a sample row in the
runner's format (case = the prompt, one turn whose text is the token), ready to store.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from ..config import ModelConfig
from ..providers import CallError, Message, Provider, Request
from ..runner import Clock

log = logging.getLogger("canary.fingerprint")


@dataclass
class Answer:
    prompt: str
    index: int
    text: str | None  # the first token ("" when the model answered nothing); None on an error
    top_logprobs: list[tuple[str, float]] | None
    row: dict  # the sample row (without run_id)


class Caller:
    """One model's one-token calls, at most `model.concurrency` at a time."""

    def __init__(self, provider: Provider, model: ModelConfig, clock: Clock):
        self.provider, self.model, self.clock = provider, model, clock
        self.plain, self.extra = provider.one_token_params(dict(model.params))
        self.limit = asyncio.Semaphore(model.concurrency)
        self.calls = self.errors = self.input_tokens = self.output_tokens = 0
        self.cost = 0.0

    @property
    def temperature(self) -> float | None:
        """The temperature the calls send (None: the API's default)."""
        value = {**self.plain, **self.extra}.get("temperature")
        return float(value) if value is not None else None

    async def _complete(self, prompt: str):
        request = Request(self.model.model, None, [Message("user", prompt)], [], {**self.plain, **self.extra})
        try:
            return await self.provider.complete(request)
        except CallError as exc:
            if exc.kind != "bad_request" or not self.extra:
                raise
            log.warning("model %s refused %s on a one-token call (%s); probing without them",
                        self.model.name, ", ".join(sorted(self.extra)), exc)
            self.extra = {}
            return await self.provider.complete(Request(self.model.model, None, [Message("user", prompt)], [],
                                                        dict(self.plain)))

    async def ask(self, prompt: str, index: int) -> Answer:
        async with self.limit:
            started = time.perf_counter()
            try:
                reply = await self._complete(prompt)
            except CallError as exc:
                reply, error = None, exc
            latency = time.perf_counter() - started
        self.calls += 1
        if reply is None:
            self.errors += 1
            row = {"case_id": prompt, "sample": index, "status": "error", "error": error.kind,
                   "error_status": error.status, "error_message": str(error), "request_id": error.request_id,
                   "input_tokens": 0, "output_tokens": 0, "latency_ms": None, "finish_reason": None,
                   "reported_model": None, "cost": None, "turns": [{"user": prompt, "text": "", "verdicts": []}],
                   "finished_at": self.clock()}
            return Answer(prompt, index, None, None, row)
        cost = self.model.cost(reply.input_tokens, reply.output_tokens)
        self.input_tokens += reply.input_tokens
        self.output_tokens += reply.output_tokens
        self.cost += cost or 0.0
        turn = {"user": prompt, "text": reply.text, "verdicts": []}
        if reply.top_logprobs:
            turn["top_logprobs"] = [[t, lp] for t, lp in reply.top_logprobs]
        row = {"case_id": prompt, "sample": index, "status": "passed" if reply.text else "failed", "error": None,
               "error_status": None, "error_message": None, "request_id": reply.request_id,
               "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
               "latency_ms": round(latency * 1000, 3), "finish_reason": reply.finish_reason,
               "reported_model": reply.model, "cost": cost, "turns": [turn], "finished_at": self.clock()}
        return Answer(prompt, index, reply.text, reply.top_logprobs, row)

    async def ask_all(self, work: Iterable[tuple[str, int]], on_answer: Callable[[Answer], None] | None = None,
                      stop: Callable[[], bool] | None = None) -> list[Answer]:
        """Every (prompt, index) asked, `concurrency` at a time; `stop()` true: no new call."""
        queue = iter(work)
        answers: list[Answer] = []

        async def worker() -> None:
            for prompt, index in queue:
                if stop and stop():
                    return
                answer = await self.ask(prompt, index)
                answers.append(answer)
                if on_answer:
                    on_answer(answer)

        await asyncio.gather(*(worker() for _ in range(self.model.concurrency)))
        return answers
