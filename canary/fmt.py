"""How a number reads in every output (terminal tables, Slack messages, the HTML pages): one
spelling each, with what stands for a missing value (`-` in text, `–` on a page)."""
from __future__ import annotations


def pct(x: float | None, digits: int = 1, missing: str = "-") -> str:
    return missing if x is None else f"{100 * x:.{digits}f}%"


def money(x: float | None, missing: str = "-") -> str:
    return missing if x is None else f"${x:.4f}"


def ms(x: float | None, missing: str = "-") -> str:
    return missing if x is None else f"{x:.0f} ms"
