"""The candidate prompts of `canary fingerprint init`: a fixed word list shipped in the package."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def candidate_words() -> tuple[str, ...]:
    """The words, in their fixed order (init tries the first `candidates` of them)."""
    text = (resources.files(__package__) / "words.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
