"""Scoring that cannot hang on a hostile reply: a cap on the scored text, a time limit per check.

A degraded model sends replies no suite author pictured: 200,000 characters of a looping
phrase, a run of dots after `ANSWER:`, a bracket opened 50,000 times. So every check reads
at most `MAX_SCORED_CHARS` characters of a reply and runs under a time limit of
`CHECK_TIMEOUT` seconds of CPU time (`time_limit`; CPU time, so a busy host does not fail
checks that did little work). Regular expressions go through the `regex` package, whose
matcher takes a timeout (it counts the process's CPU time) and releases the GIL while it
works, so the event loop and /healthz keep answering; the checks written in Python are
linear in the text and look at the clock (`check_time`). A check that runs out of time
raises `CheckTimeout`, which `checks.run` turns into a failed verdict that says so.

`slow_regex` is how `canary validate` warns about a case regex that would run out of time
on a long reply: it times the pattern on synthetic replies built to make backtracking blow up.
"""
from __future__ import annotations

import time
from contextvars import ContextVar
from functools import lru_cache
from typing import Iterable

import regex

MAX_SCORED_CHARS = 100_000  # checks read at most this many characters of a reply
CHECK_TIMEOUT = 1.0  # CPU seconds each assertion (and the answer extraction) may take

_deadline: ContextVar[float | None] = ContextVar("canary_check_deadline", default=None)


class CheckTimeout(Exception):
    """A check ran out of its time on a reply."""


class time_limit:
    """`with time_limit(seconds):` everything bounded inside the block shares one deadline,
    `seconds` from now. (A class, not a generator: it is entered a few times per sample.)"""

    __slots__ = ("seconds", "_token")

    def __init__(self, seconds: float = CHECK_TIMEOUT):
        self.seconds = seconds

    def __enter__(self) -> None:
        self._token = _deadline.set(time.thread_time() + self.seconds)

    def __exit__(self, *exc) -> None:
        _deadline.reset(self._token)


def remaining() -> float | None:
    """Seconds left before the current deadline (None outside `time_limit`); CheckTimeout if none."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    left = deadline - time.thread_time()
    if left <= 0:
        raise CheckTimeout
    return left


def check_time() -> None:
    """For checks written in Python: raise CheckTimeout once the deadline has passed."""
    remaining()


def timeout_explanation(seconds: float, reply_chars: int) -> str:
    return f"check timed out after {seconds:g} s on a reply of {reply_chars:,} characters"


# --- regular expressions --------------------------------------------------------------------

@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> regex.Pattern:
    """A pattern compiled by the `regex` package (Python `re` syntax); ValueError if it is invalid."""
    try:
        return regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValueError(f"invalid regular expression /{pattern}/: {exc}") from None


def _compiled(pattern: str | regex.Pattern) -> regex.Pattern:
    return pattern if isinstance(pattern, regex.Pattern) else compile_regex(pattern)


def _bounded(method, *args):
    try:
        return method(*args, concurrent=True, timeout=remaining())
    except TimeoutError:
        raise CheckTimeout from None


def search(pattern, text: str):
    return _bounded(_compiled(pattern).search, text)


def last_match(pattern, text: str):
    """The last match in the text, or None (the whole scan shares the deadline)."""
    found = None
    try:
        for found in _compiled(pattern).finditer(text, concurrent=True, timeout=remaining()):
            pass
    except TimeoutError:
        raise CheckTimeout from None
    return found


def starts(pattern, text: str) -> list[int]:
    """Where every match begins (the whole scan shares the deadline)."""
    try:
        return [m.start() for m in _compiled(pattern).finditer(text, concurrent=True, timeout=remaining())]
    except TimeoutError:
        raise CheckTimeout from None


def findall(pattern, text: str) -> list:
    return _bounded(_compiled(pattern).findall, text)


def split(pattern, text: str) -> list[str]:
    return _bounded(_compiled(pattern).split, text)


def sub(pattern, replacement: str, text: str) -> str:
    return _bounded(_compiled(pattern).sub, replacement, text)


# --- the validate-time probe ----------------------------------------------------------------

def synthetic_replies(samples: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(description, text) of long replies, each MAX_SCORED_CHARS characters, that make a
    backtracking pattern blow up: runs of one kind of character ended by one that breaks the
    match, a final-answer line trailed by dots, and each sample (a reference answer)
    repeated, as a looping model writes it."""
    n = MAX_SCORED_CHARS
    runs = [("a", "!"), ("a ", "!"), (" ", "x"), ("\n", "x"), ("1", "x"), (". ", "x"), ("-", "x")]
    out = [(f"{unit!r} x {(n - 1) // len(unit):,} then {end!r}", unit * ((n - 1) // len(unit)) + end)
           for unit, end in runs]
    out += [("'ANSWER: 4' then '. ' repeated", ("ANSWER: 4" + ". " * n)[: n - 1] + "x"),
            ("'ANSWER: 4' then spaces", ("ANSWER: 4" + " " * n)[: n - 1] + "x"),
            ("blank lines then 'ANSWER: 4'", "\n" * (n - 9) + "ANSWER: 4")]
    for sample in dict.fromkeys(s for s in samples if s.strip()):
        out.append(("the reference answer repeated", ((sample.rstrip() + "\n") * (n // (len(sample) + 1) + 1))[:n]))
    return out


def slow_regex(pattern: str, *, every_match: bool, samples: Iterable[str] = (),
               seconds: float = CHECK_TIMEOUT) -> str | None:
    """Which synthetic reply makes `pattern` run out of time (None: none does).

    `every_match`: scan the whole reply, as answer extraction does (else stop at the first
    match, as the regex assertion does)."""
    compiled = compile_regex(pattern)
    for description, text in synthetic_replies(samples):
        try:
            with time_limit(seconds):
                last_match(compiled, text) if every_match else search(compiled, text)
        except CheckTimeout:
            return description
    return None
