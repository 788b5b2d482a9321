"""`canary demo`: the whole loop in a few seconds, with no key and no network.

Simulated days of scheduled runs against the built-in simulated model on a temporary
SQLite database, then an injected regression, its detection (confirmed by a second run),
the alert message, and the recovery. The clock is the simulated day, not the wall clock.
"""
from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from . import alerts, monitor
from .config import Config, ModelConfig
from .runner import endpoint_factory, jobs_for
from .sim import SimServer
from .store import Store
from .suites import Suite


@dataclass
class Day:
    slot: datetime
    wrong_rate: float
    watch: monitor.Watch


def plan(healthy: int = 12, degraded: int = 2, recovered: int = 1) -> list[float]:
    """The simulated model's wrong-answer share, day by day."""
    return [0.03] * healthy + [0.35] * degraded + [0.03] * recovered


def run_demo(suites: dict[str, Suite], *, suite: str = "reasoning", repeat: int = 3,
             days: list[float] | None = None, on_day: Callable[[Day], None] | None = None,
             directory: Path | None = None) -> tuple[list[Day], list[dict]]:
    """Run the simulated days; returns them and the alerts as `canary alerts` lists them."""
    with tempfile.TemporaryDirectory() as tmp:
        root = directory or Path(tmp)
        config = Config(database=f"sqlite:///{root / 'demo.db'}", models=[
            ModelConfig(name="demo-model", provider="anthropic", model="claude-sim", suites=[suite], repeat=repeat)])
        store = Store(config.database_url)
        start = datetime(2026, 11, 1, 6, 0)
        out = []
        with SimServer(suites) as sim:
            factory = endpoint_factory(sim.url, api_key="canary-demo")
            for i, wrong in enumerate(days or plan()):
                slot = start + timedelta(days=i)
                sim.configure(wrong_rate=wrong)
                sim.reset(seed=i)
                jobs = jobs_for(config, suites, slot=slot, kind="scheduled")
                watch = asyncio.run(monitor.run_and_watch(store, config, jobs, clock=lambda s=slot: s,
                                                          provider_factory=factory))
                day = Day(slot, wrong, watch)
                out.append(day)
                if on_day:
                    on_day(day)
        listed = alerts.list_alerts(store)
        store.close()
    return out, listed
