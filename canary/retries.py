"""The daemon's slot-retry policy: a slot that failed stays due until `daemon.catch_up` ends.

A slot (model, scheduled time, kind) whose claim or run failed (the database locked, down
or full, a model's key unset) is tried again after a backoff, 30 s doubling to 15 min,
until `catch_up` after its time; only then is it given up. Per model the policy also knows
since when its scheduled runs have been failing, which /healthz, the `canary_failing`
alert and the heartbeat read. No I/O and no wall clock: every method is given the time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

SlotKey = tuple[str, datetime, str]  # (model, slot, kind)


@dataclass(frozen=True)
class Backoff:
    """`first`, doubling at each attempt, never more than `most`."""

    first: timedelta = timedelta(seconds=30)
    most: timedelta = timedelta(minutes=15)

    def delay(self, attempts: int) -> timedelta:
        return min(self.first * 2 ** min(max(attempts - 1, 0), 30), self.most)


@dataclass
class SlotFailure:
    model: str
    slot: datetime
    kind: str
    first_at: datetime  # the first failure
    why: str  # the latest failure, one line
    storage: bool  # the database failed (as opposed to, say, a key unset)
    attempts: int
    next_at: datetime  # the next try
    deadline: datetime  # given up from then on (the slot's time + catch_up)

    @property
    def key(self) -> SlotKey:
        return self.model, self.slot, self.kind

    def describe(self) -> str:
        then = (f"next {self.next_at.isoformat()}, given up at {self.deadline.isoformat()}"
                if self.next_at < self.deadline else f"no try left before {self.deadline.isoformat()}")
        return (f"{self.model} {self.slot.isoformat()} ({self.kind}): {self.why} "
                f"[{self.attempts} attempt(s) since {self.first_at.isoformat()}, {then}]")


class SlotRetries:
    """Failed slots waiting for their next try, and since when each model has been failing."""

    def __init__(self, backoff: Backoff = Backoff()):
        self.backoff = backoff
        self.slots: dict[SlotKey, SlotFailure] = {}
        self.failing_since: dict[str, tuple[datetime, str]] = {}  # model -> (since, latest why)

    def failed(self, key: SlotKey, why: str, *, now: datetime, catch_up: timedelta,
               storage: bool = False) -> tuple[SlotFailure, bool]:
        """Record a failed attempt; returns the failure and whether its reason is new (log it then)."""
        model, slot, kind = key
        old = self.slots.get(key)
        attempts = old.attempts + 1 if old else 1
        failure = SlotFailure(model, slot, kind, old.first_at if old else now, why, storage, attempts,
                              now + self.backoff.delay(attempts), slot + catch_up)
        self.slots[key] = failure
        since = self.failing_since.get(model, (now, why))[0]
        self.failing_since[model] = (since, why)
        return failure, old is None or old.why != why

    def succeeded(self, key: SlotKey) -> bool:
        """The slot ran (or another replica holds or finished it). True if its model was failing
        and no other slot of it still is: the model has recovered."""
        self.slots.pop(key, None)
        model = key[0]
        if model in self.failing_since and not any(k[0] == model for k in self.slots):
            del self.failing_since[model]
            return True
        return False

    def due(self, now: datetime) -> list[SlotKey]:
        """Failed slots whose next try has come (and whose deadline has not)."""
        return [k for k, f in sorted(self.slots.items(), key=lambda kv: kv[1].next_at)
                if f.next_at <= now < f.deadline]

    def expired(self, now: datetime) -> list[SlotFailure]:
        """Failed slots past their deadline, removed: the caller gives them up. Their model stays failing."""
        gone = [f for f in self.slots.values() if f.deadline <= now]
        for f in gone:
            del self.slots[f.key]
        return gone

    def failing_longer_than(self, after: timedelta, now: datetime) -> dict[str, tuple[datetime, str]]:
        """Models whose scheduled runs have failed, with no success since, for at least `after`."""
        return {m: v for m, v in self.failing_since.items() if now - v[0] >= after}

    def forget_models(self, keep: set[str]) -> None:
        """Drop what is known of models no longer configured."""
        for key in [k for k in self.slots if k[0] not in keep]:
            del self.slots[key]
        for model in [m for m in self.failing_since if m not in keep]:
            del self.failing_since[model]
