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

from . import monitor
from .config import Config, ModelConfig
from .reports import alert_list
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
             directory: Path | None = None, report: Path | None = None) -> tuple[list[Day], list[dict]]:
    """Run the simulated days; returns them and the alerts as `canary alerts` lists them
    (`report`: also write the report page of the demo's database there)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = directory or Path(tmp)
        config = Config(database=f"sqlite:///{root / 'demo.db'}", models=[
            ModelConfig(name="demo-model", provider="anthropic", model="claude-sim", suites=[suite], repeat=repeat)])
        store = Store(config.database_url)
        out = simulate(store, config, suites, [{"wrong_rate": w} for w in days or plan()], on_day=on_day)
        listed = alert_list(store)
        if report is not None:
            from .report_html import render_report
            report.write_text(render_report(store, config, suites, out[-1].slot + timedelta(hours=1)),
                              encoding="utf-8")
        store.close()
    return out, listed


def simulate(store: Store, config: Config, suites: dict[str, Suite], days: list[dict], *,
             start: datetime = datetime(2026, 11, 1, 6, 0), on_day: Callable[[Day], None] | None = None) -> list[Day]:
    """One scheduled run a day of every configured model, the simulated model's knobs set per
    day (`wrong_rate`, `error_rate`, ...; with `suites: [...]` only those suites get them, the
    others a healthy model); detection, confirmation and alerts as in the daemon."""
    out = []
    with SimServer(suites) as sim:
        factory = endpoint_factory(sim.url, api_key="canary-demo")
        for i, day_knobs in enumerate(days):
            slot = start + timedelta(days=i)
            knobs = {k: v for k, v in day_knobs.items() if k != "suites"}
            hit = set(day_knobs.get("suites") or suites)
            jobs = jobs_for(config, suites, slot=slot, kind="scheduled")
            watches = []
            for batch, batch_knobs in (([j for j in jobs if j.suite.name in hit], knobs),
                                       ([j for j in jobs if j.suite.name not in hit], {})):
                if batch:
                    sim.configure(**{"wrong_rate": 0.0, "error_rate": 0.0, **batch_knobs})
                    sim.reset(seed=i)
                    watches.append(asyncio.run(monitor.run_and_watch(store, config, batch, clock=lambda s=slot: s,
                                                                     provider_factory=factory)))
            watch = monitor.Watch(*([x for w in watches for x in getattr(w, f)] for f in
                                    ("summaries", "confirmations", "events", "assessments")))
            day = Day(slot, knobs.get("wrong_rate", 0.0), watch)
            out.append(day)
            if on_day:
                on_day(day)
    return out
