"""The time canary works in: naive UTC. Everything that decides takes a clock; this is the real one."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
