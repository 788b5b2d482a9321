"""The simulated model behind the daemon (`canary daemon --sim`) and on its own (`canary sim`),
kept in step with the suite files.

`canary daemon --sim` is the real daemon (schedule, catch-up, detection, alerts, the report
at `/`) answered by the built-in simulated model: no key, no network, and its runs go to
canary-sim.db beside the config, as with `canary run --sim`, never to the real database.
The simulator answers every suite the daemon loads, and learns the suites of each reload,
so a new suite file is scheduled and answered without a restart. `canary sim` serves the
simulator alone and picks up new or changed suite files by itself.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Callable

from .daemon import Daemon
from .monitor import Watch
from .runner import endpoint_factory
from .service import run_daemon
from .sim import SimServer
from .suites import load_suites
from .workspace import FileWatch

SIM_KEY = "canary-sim"  # the simulator accepts any key; the SDKs want one


class SimDaemon(Daemon):
    """The daemon on the simulated model's database, its models answered by `server`."""

    sim = True

    def __init__(self, config_path=None, *, server: SimServer, **kwargs):
        self.server = server
        super().__init__(config_path, provider_factory=endpoint_factory(server.url, SIM_KEY), **kwargs)
        server.set_suites(self.ws.suites)

    def reload(self, reason: str = "SIGHUP") -> bool:
        applied = super().reload(reason)
        self.server.set_suites(self.ws.suites)
        return applied


def run_sim_daemon(config_path=None, *, once: bool = False, log_format: str = "human", **knobs) -> list[Watch]:
    """`canary daemon --sim`: a simulator on a free port, and the daemon answered by it."""
    with SimServer({}, **knobs) as server:
        return run_daemon(config_path, once=once, log_format=log_format, make=partial(SimDaemon, server=server))


def follow_suites(directory: Path, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                  every: float = 1.0) -> Callable[[SimServer], None]:
    """For `canary sim`: reload the suites into the simulator when their files changed and
    settled (the daemon's `FileWatch`), looking at most once every `every` seconds."""
    directory = Path(directory)
    files, last = FileWatch(None, directory), [clock()]

    def on_idle(sim: SimServer) -> None:
        if clock() - last[0] < every:
            return
        last[0] = clock()
        if not files.settled(directory):
            return
        files.applied_now(directory)
        suites, problems = load_suites(directory)
        for problem in problems:
            say(problem)
        sim.set_suites({**sim.suites, **suites} if problems else suites)  # a broken file keeps its last good suite
        say(f"suites reloaded from {directory}: {', '.join(sorted(suites)) or 'none'}")
    return on_idle
