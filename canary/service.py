"""`canary daemon` as a process: HTTP, signals, a graceful stop, `--once`, and its exit codes.

`Service` runs a `daemon.Daemon` (the scheduler's decisions) in the foreground: it serves
/healthz and /metrics (a busy address is one line and exit 2), starts the scheduler, runs
the catch-up rule once the database answers, and on SIGTERM/SIGINT stops scheduling, lets
samples in flight finish within `daemon.shutdown_grace`, marks unfinished runs interrupted
and returns (exit 0); a second signal cancels at once; SIGHUP reloads the config.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from . import logs
from .daemon import Daemon
from .errors import CanaryError, StorageError, UsageError
from .monitor import Watch
from .slots import clock_from_env
from .store import failure_text
from .config import parse_address
from .web import WebServer

log = logging.getLogger("canary.daemon")


class Service:
    """One daemon process around a `Daemon`."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.web: WebServer | None = None
        self._stopping: asyncio.Event | None = None

    def stop(self) -> None:
        """SIGTERM/SIGINT: stop scheduling; in-flight samples finish (a second signal: stop at once)."""
        if self._stopping is None:
            return
        if self._stopping.is_set():
            log.warning("second stop signal: cancelling the runs in flight now")
            for task in list(self.daemon._tasks):
                task.cancel()
            return
        log.info("stopping: no new slots or samples; samples in flight get up to %.0f s",
                 self.daemon.config.daemon.shutdown_grace.total_seconds())
        self._stopping.set()  # serve() shuts the scheduler down as soon as it wakes
        self.daemon.control.stop.set()

    def _begin(self, signals: bool) -> None:
        self._stopping = asyncio.Event()
        self.daemon.control.stop = asyncio.Event()
        if signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        try:
            self.daemon.reload("SIGHUP")
        except Exception:  # the database is down, say: the daemon keeps running
            log.exception("reload failed")

    async def _finish(self) -> None:
        """Wait for the runs in flight (up to the grace), cancel the rest, mark what is unfinished."""
        d = self.daemon
        pending = set(d._tasks)
        if pending:  # the whole stop fits in the grace: a little of it is kept for the cancel and the marks
            grace = d.config.daemon.shutdown_grace.total_seconds()
            _done, pending = await asyncio.wait(pending, timeout=max(grace - 2.0, grace * 0.8))
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        try:
            n = await asyncio.to_thread(d.store.mark_interrupted, d.owner, d.clock())
        except Exception as exc:  # the next daemon finds them abandoned (this owner is gone by then)
            log.error("unfinished runs could not be marked interrupted: %s", failure_text(exc))
            return
        if n:
            log.info("%d unfinished run(s) marked interrupted; the next daemon to start resumes them", n)

    def _listen(self) -> WebServer:
        d = self.daemon
        address = d.config.daemon.http
        try:
            host, port = parse_address(address)
            return WebServer(host, port, d.metrics, d.healthz, report=d.report).start()
        except (ValueError, OSError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UsageError(f"cannot serve HTTP on {address} (daemon.http): {why}; stop what uses that "
                             "address or choose another daemon.http") from None

    async def serve(self, *, signals: bool = True) -> None:
        """Run until stop(): HTTP, the scheduler, the catch-up rule (once the database answers)."""
        d = self.daemon
        self._begin(signals)
        if d.config.daemon.http:
            self.web = self._listen()
            log.info("HTTP on %s (/healthz, /metrics)", self.web.url)
        d.scheduler = d.make_scheduler()
        d.scheduler.start()
        log.info("daemon %s: %d models, database %s", d.owner, len(d.config.models), d.store.safe_url)
        if d.connected:
            d.catch_up()
        try:
            await self._stopping.wait()
        finally:
            if d.scheduler.running:
                d.scheduler.shutdown(wait=False)
            await self._finish()
            if self.web is not None:
                self.web.stop()
            log.info("daemon stopped")

    async def once(self, *, signals: bool = True) -> list[Watch]:
        """`--once`: abandoned runs and due slots (the catch-up rule), the outbox, then return."""
        d = self.daemon
        self._begin(signals)
        tasks = d.catch_up()
        if tasks:
            stopped = asyncio.ensure_future(self._stopping.wait())
            pending = set(tasks)
            while pending and not stopped.done():
                await asyncio.wait(pending | {stopped}, return_when=asyncio.FIRST_COMPLETED)
                pending = {t for t in pending if not t.done()}
            stopped.cancel()
        watches = [t.result() for t in tasks if t.done() and not t.cancelled() and t.result() is not None]
        log.info("once: %d slot(s) due or abandoned, %d run", len(tasks), len(watches))
        if not d.control.stopping:
            await d.deliver()
        await self._finish()
        return watches


def run_daemon(config_path=None, *, once: bool = False, log_format: str = "human", make=Daemon) -> list[Watch]:
    """`canary daemon [--once]`: logging, the SQLite single-daemon lock, then serve (or one pass).
    `--once` raises StorageError (exit 5) when the database fails, CanaryError (exit 2) when a
    slot could not run for another reason (a key unset). `make` builds the daemon (`canary
    daemon --sim` passes its SimDaemon)."""
    redactor = logs.setup_logging(log_format)
    daemon = make(config_path, clock=clock_from_env(once), lock=True, redactor=redactor, wait_for_database=not once)
    service = Service(daemon)
    try:
        if once:
            watches = asyncio.run(service.once())
            failures = list(daemon.retries.slots.values())
            if failures:  # a cron job must notice: the reasons, and an exit code
                text = f"{len(failures)} slot(s) failed: " + "; ".join(f.describe() for f in failures)
                raise (StorageError if any(f.storage for f in failures) else CanaryError)(text)
            return watches
        asyncio.run(service.serve())
        return []
    finally:
        daemon.close()
