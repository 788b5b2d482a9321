"""The alert episode of one signal of one series, as pure functions: monitor.py drives them
with the database, `Walk` drives them with a list (the simulations of canary/power.py, the
benchmark), so a published false-alarm figure is the shipped behaviour.

- A scheduled run whose quality verdict breaches, while no quality alert is open, gets one
  confirmation run (`detection.confirm`); the verdict on the pooled samples decides.
- breach and no alert open -> open; not in breach and an alert open -> close (recovered);
  otherwise nothing (one message when a series goes into breach, none while it stays, one
  when it is back). A day without a verdict changes nothing.
- The run that opened an alert and every run made while it was open never enter a baseline
  or a reference (`inside`); the run that closed it does.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from .detect import DetectionParams, RunPoint, Verdict, judge, pool


def wants_confirmation(verdict: Verdict, *, alert_open: bool, confirm: bool, pooled: bool) -> bool:
    """Re-run the suite before deciding: a fresh breach, confirmation on, not already pooled."""
    return confirm and verdict.breach and not alert_open and not pooled


def transition(status: str, *, alert_open: bool) -> str | None:
    """"open", "close" or None for a verdict status (breach | ok | no_verdict)."""
    if status == "breach" and not alert_open:
        return "open"
    if status == "ok" and alert_open:
        return "close"
    return None


def inside(run: int, intervals: list[tuple[int, int | None]]) -> bool:
    """A run (id, or index) is in an alert: from the run that opened it up to, not including,
    the run that closed it (None while open)."""
    return any(lo <= run and (hi is None or run < hi) for lo, hi in intervals)


@dataclass
class Walk:
    """One series day by day, as monitor handles it, without a database.

    `day(run, confirmation)` judges a scheduled run (`confirmation()` makes the confirmation
    run when the episode logic asks for one) and returns "open", "close" or None.
    """

    params: DetectionParams
    confirm: bool = True
    history: list[RunPoint] = field(default_factory=list)
    intervals: list[tuple[int, int | None]] = field(default_factory=list)

    @property
    def alert_open(self) -> bool:
        return bool(self.intervals) and self.intervals[-1][1] is None

    def judge(self, run: RunPoint) -> Verdict:
        return judge(self.history, run, self.params)

    def day(self, run: RunPoint, confirmation: Callable[[], RunPoint]) -> str | None:
        verdict = self.judge(run)
        if wants_confirmation(verdict, alert_open=self.alert_open, confirm=self.confirm, pooled=False):
            run = pool(run, confirmation())
            verdict = self.judge(run)
        action = transition(verdict.status, alert_open=self.alert_open)
        index = len(self.history)
        if action == "open":
            self.intervals.append((index, None))
        elif action == "close":
            self.intervals[-1] = (self.intervals[-1][0], index)
        self.history.append(replace(run, in_alert=inside(index, self.intervals)))
        return action
