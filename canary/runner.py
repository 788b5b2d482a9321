"""A run: every (case, sample) of a suite against one model, turns and tool rounds included.

Each sample ends as passed, failed (a wrong answer) or error (a service failure after the
SDK's own bounded retries, an unreadable or empty answer: with its class, HTTP status and
request id). Errors never count as wrong answers; nothing a reply holds can stop a run.
Scoring runs in a worker thread, bounded per assertion (checks.run), so a hostile reply
never stalls the event loop. Samples are handed to the `SampleWriter` the moment they finish.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

from . import checks
from .clock import utcnow
from .config import Config, ModelConfig
from .errors import StorageError, UsageError
from .providers import CallError, Message, Provider, Request, provider_class
from .store import Store, failure_text, is_database_failure
from .suites import Case, Suite
from .writer import SampleWriter

INLINE_SCORING = 0.02  # CPU seconds a turn's checks may take on the event loop (most take microseconds)
MAX_TOOL_ROUNDS = 5  # tool rounds per turn before the turn is scored as it stands

log = logging.getLogger("canary.runner")

Clock = Callable[[], datetime]
ProviderFactory = Callable[[ModelConfig], Provider]


def owner_id() -> str:
    """A process's name in the runs table, so its heartbeat is its own: hostname:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def make_provider(model: ModelConfig) -> Provider:
    """The real thing: the model's SDK, its base_url, its key from the environment."""
    key = os.environ.get(model.key_env)
    if not key:
        raise UsageError(f"model {model.name}: the API key variable ${model.key_env} is not set "
                         f"(set it, or name another with api_key_env)")
    return provider_class(model.provider)(api_key=key, base_url=model.base_url,
                                          timeout=model.timeout, max_retries=model.max_retries)


def endpoint_factory(url: str, api_key: str) -> ProviderFactory:
    """Every model pointed at one server (the simulator): its root URL plus the API's prefix."""
    def factory(model: ModelConfig) -> Provider:
        cls = provider_class(model.provider)
        return cls(api_key=api_key, base_url=url.rstrip("/") + cls.api_prefix,
                   timeout=model.timeout, max_retries=model.max_retries)
    return factory


@dataclass
class Job:
    """One run to make: a model, a suite, a slot."""

    model: ModelConfig
    suite: Suite
    repeat: int
    slot: datetime
    kind: str = "manual"  # manual | scheduled | confirm


@dataclass
class RunSummary:
    run_id: int
    model: str
    suite: str
    status: str
    planned: int
    passed: int
    failed: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    latency_p50_ms: float | None

    @property
    def answered(self) -> int:
        return self.passed + self.failed

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.answered if self.answered else None

    @property
    def error_rate(self) -> float | None:
        total = self.answered + self.errors
        return self.errors / total if total else None

    @classmethod
    def of(cls, row) -> "RunSummary":
        return cls(row.id, row.model, row.suite, row.status, row.planned, row.passed, row.failed, row.errors,
                   row.input_tokens, row.output_tokens, row.cost, row.latency_p50_ms)

    def as_dict(self) -> dict:
        return {**self.__dict__, "pass_rate": self.pass_rate, "error_rate": self.error_rate}


def jobs_for(config: Config, suites: dict[str, Suite], *, models: Iterable[str] = (),
             suite_names: Iterable[str] = (), repeat: int | None = None, slot: datetime,
             kind: str = "manual") -> list[Job]:
    """The (model, suite) pairs a command or a schedule asks for; unknown names are usage errors."""
    models, suite_names = list(models), list(suite_names)
    known_models = [m.name for m in config.models]
    for name in models:
        if name not in known_models:
            raise UsageError(f"unknown model '{name}' (configured: {', '.join(known_models) or 'none'})")
    for name in suite_names:
        if name not in suites:
            raise UsageError(f"unknown suite '{name}' (loaded: {', '.join(sorted(suites)) or 'none'})")
    jobs = []
    for m in config.models:
        if models and m.name not in models:
            continue
        for name in (m.suites if m.suites is not None else sorted(suites)):
            if name not in suites or (suite_names and name not in suite_names):
                continue
            suite = suites[name]
            jobs.append(Job(m, suite, repeat or m.repeat or suite.repeat, slot, kind))
    return jobs


async def run_sample(provider: Provider, model: ModelConfig, suite: Suite, case: Case, index: int,
                     run_id: int, clock: Clock) -> dict:
    """One sample of one case, every turn and tool round; the row to store."""
    messages: list[Message] = []
    turns: list[dict] = []
    tokens_in = tokens_out = 0
    latency = 0.0
    reported = finish = request_id = None
    error: CallError | None = None
    pattern = case.answer.regex if case.answer else None
    params = {**model.params, **suite.params}
    tools = suite.tools_for(case)
    try:
        for turn in case.turns:
            messages.append(Message("user", turn.user))
            calls: list[dict] = []
            texts: list[str] = []
            thinking: list[str] = []
            record = {"user": turn.user, "text": "", "tool_calls": calls, "verdicts": []}
            turns.append(record)
            for round_ in range(MAX_TOOL_ROUNDS + 1):
                started = time.perf_counter()
                reply = await provider.complete(Request(model.model, case.system, messages, tools, params))
                latency += time.perf_counter() - started
                tokens_in += reply.input_tokens
                tokens_out += reply.output_tokens
                reported, finish, request_id = reply.model, reply.finish_reason, reply.request_id
                messages.append(Message("assistant", reply.text, reply.tool_calls, native=reply.native))
                texts.append(reply.text)
                if reply.thinking:
                    thinking.append(reply.thinking)
                calls += [{"name": c.name, "arguments": c.arguments} for c in reply.tool_calls]
                if not reply.tool_calls or round_ == MAX_TOOL_ROUNDS:
                    break
                messages.append(Message("tool", tool_results=[
                    (c.id, c.name, json.dumps(case.canned_result(c.name, c.arguments), default=str))
                    for c in reply.tool_calls]))
            final = checks.TurnReply(text=texts[-1], tool_calls=calls, finish_reason=finish)
            verdicts = checks.run(turn.asserts, final, pattern, timeout=INLINE_SCORING)
            if any(v.timed_out for v in verdicts):  # a reply slow to score: off the event loop, with the full time
                verdicts = await asyncio.to_thread(checks.run, turn.asserts, final, pattern)
            record.update(text=final.text, finish_reason=finish, verdicts=[v.as_dict() for v in verdicts])
            if thinking:
                record["thinking"] = "\n".join(thinking)
    except CallError as exc:
        error = exc
    except Exception as exc:  # a reply that broke the next request or its tool round: never the run
        log.warning("case %s sample %d: %s: %s", case.id, index, type(exc).__name__, exc)
        error = CallError("bad_response", f"the answer could not be used ({type(exc).__name__}: {str(exc)[:200]})",
                          request_id=request_id)
    if error:
        status = "error"
    else:
        status = "passed" if all(v["passed"] for t in turns for v in t["verdicts"]) else "failed"
    return {
        "run_id": run_id, "case_id": case.id, "sample": index, "status": status,
        "error": error.kind if error else None, "error_status": error.status if error else None,
        "error_message": str(error) if error else None,
        "request_id": (error.request_id if error else request_id),
        "input_tokens": tokens_in, "output_tokens": tokens_out,
        "latency_ms": round(latency * 1000, 3) if not error else None,
        "finish_reason": finish, "reported_model": reported,
        "cost": model.cost(tokens_in, tokens_out), "turns": turns, "finished_at": clock(),
    }


class Budget:
    """A model's daily token and cost caps, against what it has spent since midnight UTC."""

    def __init__(self, model: ModelConfig, tokens: int, cost: float):
        self.model, self.tokens, self.cost = model, tokens, cost

    def add(self, row: dict) -> None:
        self.tokens += row["input_tokens"] + row["output_tokens"]
        self.cost += row["cost"] or 0.0

    @property
    def exhausted(self) -> bool:
        m = self.model
        return ((m.daily_token_budget is not None and self.tokens >= m.daily_token_budget)
                or (m.daily_cost_budget is not None and self.cost >= m.daily_cost_budget))


@dataclass
class Control:
    """How a batch of runs may be stopped: a shutdown event, budgets, a heartbeat."""

    stop: asyncio.Event | None = None  # set: take no new sample, let those in flight finish
    lease: timedelta = timedelta(seconds=120)  # a run whose heartbeat is older is taken over
    owner: str = field(default_factory=lambda: owner_id())  # this process, in the runs table
    lost: set[int] = field(default_factory=set)  # runs another replica took over: stop running them

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()


async def execute(provider: Provider, job: Job, run_id: int, todo: list[tuple[Case, int]],
                  writer: SampleWriter, *, concurrency: asyncio.Semaphore, clock: Clock, control: Control,
                  budget: Budget, on_sample: Callable[[Job, dict], None] | None = None) -> str:
    """Run the given samples of one run, at most `concurrency` at a time per model.

    Returns the run's final status: complete, interrupted (shutdown), budget_exhausted, or
    lost (another replica took the run over: it finishes it). A failure (storing a sample,
    say) stops every worker of the run: the samples in flight finish, then it is raised.
    """
    work = iter(todo)
    ended: dict = {"status": "complete"}

    async def worker() -> None:
        try:
            await work_through()
        except Exception as exc:
            ended.setdefault("failure", exc)

    async def work_through() -> None:
        for case, index in work:
            if "failure" in ended:
                return
            if control.stopping:
                ended["status"] = "interrupted"
                return
            if run_id in control.lost:  # taken over by a replica that found our heartbeat stale
                ended["status"] = "lost"
                return
            if budget.exhausted:
                ended["status"] = "budget_exhausted"
                return
            async with concurrency:
                row = await run_sample(provider, job.model, job.suite, case, index, run_id, clock)
            budget.add(row)
            writer.put(row)
            if on_sample:
                on_sample(job, row)

    await asyncio.gather(*(worker() for _ in range(min(job.model.concurrency, len(todo)) or 1)))
    if "failure" in ended:
        raise ended["failure"]
    return ended["status"]


def planned_samples(suite: Suite, repeat: int) -> list[tuple[Case, int]]:
    return [(case, i) for case in suite.cases for i in range(repeat)]


async def heartbeat(store: Store, control: Control, run_ids: set[int], clock: Clock) -> None:
    """Keep the runs this replica holds visibly alive (a quarter of the lease apart); a beat the
    database refuses is tried again at the next one."""
    while True:
        await asyncio.sleep(control.lease.total_seconds() / 4)
        for run_id in list(run_ids):
            try:
                alive = await asyncio.to_thread(store.heartbeat, run_id, control.owner, clock())
            except Exception:
                continue
            if not alive:
                control.lost.add(run_id)


async def run_jobs(store: Store, jobs: list[Job], *, clock: Clock = utcnow, control: Control | None = None,
                   provider_factory: ProviderFactory = make_provider,
                   on_sample: Callable[[Job, dict], None] | None = None) -> list[RunSummary]:
    """Run every job (all models at once, each within its own concurrency); summaries in job order.

    A job whose slot already has a run resumes it when unfinished and not held by a live
    replica (only the missing samples are run), and is skipped when complete. When the
    database fails (read-only, full, gone), every run this call holds is marked
    `interrupted` if the database still takes that, and StorageError says so in one line.
    """
    control = control or Control()
    providers: dict[str, Provider] = {}
    limits: dict[str, asyncio.Semaphore] = {}
    budgets: dict[str, Budget] = {}
    midnight = clock().replace(hour=0, minute=0, second=0, microsecond=0)
    for job in jobs:
        if job.model.name not in providers:
            providers[job.model.name] = provider_factory(job.model)
            limits[job.model.name] = asyncio.Semaphore(job.model.concurrency)
            budgets[job.model.name] = Budget(job.model, *store.spent_since(job.model.name, midnight))
    writer = SampleWriter(store)
    held: set[int] = set()
    results: list[tuple[int, str | None]] = [(0, None)] * len(jobs)  # (run id, final status if ours)

    async def one(i: int, job: Job) -> None:
        plan = planned_samples(job.suite, job.repeat)
        run_id = store.create_run(model=job.model.name, suite=job.suite.name, suite_version=job.suite.version,
                                  slot=job.slot, kind=job.kind, planned=len(plan), owner=control.owner, now=clock())
        if run_id is None:  # the slot has a run already: resume it if unfinished and abandoned
            existing = store.find_run(job.model.name, job.suite.name, job.slot, job.kind)
            if existing.status == "complete" or not store.take_over(
                    existing.id, control.owner, clock(), unless_heartbeat_after=clock() - control.lease):
                results[i] = (existing.id, None)
                return
            run_id = existing.id
            done = store.done_samples(run_id)
            plan = [(c, k) for c, k in plan if (c.id, k) not in done]
        held.add(run_id)
        status = await execute(providers[job.model.name], job, run_id, plan, writer, concurrency=limits[job.model.name],
                               clock=clock, control=control, budget=budgets[job.model.name], on_sample=on_sample)
        results[i] = (run_id, status)

    beat = asyncio.create_task(heartbeat(store, control, held, clock))
    failures: list[BaseException] = []
    try:
        outcomes = await asyncio.gather(*(one(i, job) for i, job in enumerate(jobs)), return_exceptions=True)
        failures += [o for o in outcomes if isinstance(o, BaseException)]
    finally:
        beat.cancel()
        try:
            writer.close()
        except StorageError as exc:
            failures.append(exc)
        for provider in providers.values():
            await provider.aclose()
    if failures:
        give_back(store, held, control, clock, failures[0])
    summaries = []
    for run_id, status in results:
        ours = status and status != "lost" and run_id not in control.lost
        row = store.finish_run(run_id, status, clock()) if ours else store.run(run_id)
        summaries.append(RunSummary.of(row))
    return summaries


def give_back(store: Store, held: set[int], control: Control, clock: Clock, failure: BaseException) -> None:
    """After a failure: mark each run held `interrupted` (resumable; even one whose samples all ran,
    since the writer may have lost its last ones), as far as the database lets, then raise (a
    database failure as one line of StorageError)."""
    mine = sorted(held - control.lost)
    marked = 0
    for run_id in mine:
        try:
            store.finish_run(run_id, "interrupted", clock())
            marked += 1
        except Exception:  # the database refuses: the run stays `running` until it is found abandoned
            pass
    if not is_database_failure(failure):
        raise failure
    kept = f"{marked} run(s) marked interrupted, their stored samples kept"
    if marked < len(mine):
        kept += f"; {len(mine) - marked} could not be marked and show as running until the next run or daemon finds them"
    raise StorageError(f"the database failed ({store.safe_url}): {failure_text(failure)}; {kept}") from None
