"""The time canary works in: naive UTC. Everything that decides takes a clock; this is the real
one. In files (the JSONL export), times are ISO 8601 with a Z."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat() + "Z" if dt else None  # stored times are naive UTC


def parse_time(value: str | None) -> datetime | None:
    """ISO 8601 (a trailing Z or an offset allowed) to naive UTC."""
    if value is None:
        return None
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.astimezone(timezone.utc).replace(tzinfo=None) if dt.tzinfo else dt
