"""Fault benchmark, infrastructure half: run by faults.py with the reply and file scenarios.

    python tests/benchmarks/faults.py                       # both halves, one table
    python tests/benchmarks/faults_infra.py [--only NAME]... [--pg URL] [--lock-seconds 45]   # this half alone

Replays the host faults of issue 9 against the code users run: a real `canary daemon` (or
`canary run`) process, the simulated model on loopback, a Slack stub. Each scenario is a
function that takes a scratch directory and returns what it saw; `SCENARIOS` lists them (the
reply and file scenarios live in faults.py, whose runner can take these as they are).

- sqlite_lock_across_a_slot: another connection holds SQLite's write lock for 45 s across a
  slot (longer than the 30 s busy timeout).
- postgres_restart_mid_run: PostgreSQL goes away for 10 s in the middle of a run (a TCP proxy
  in front of the shared server is cut: to the client that is a restart; the server is never
  touched).
- postgres_down_at_daemon_start: the daemon starts while PostgreSQL is away for 10 s.
- disk_full_during_canary_run: the SQLite file lives on a 2 MB tmpfs that fills up during
  `canary run` (needs root to mount; skipped otherwise); space is freed, `canary run --resume`.
- slack_404_and_retry_after_date: Slack answers 404 no_service to one message and 429 with
  `Retry-After: <HTTP date>` to another, through the daemon's outbox.

Each prints the fault, the outcome and the time to recover (from the end of the fault to
the work being done). Times move with the machine's load and include the daemon's own
backoff (a failed slot is tried again after 30 s, a database at start after 1, 2, 4... s).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from canary import alerts  # noqa: E402
from canary.schema import outbox, runs, samples  # noqa: E402
from canary.sim import SimServer  # noqa: E402
from canary.store import Store  # noqa: E402
from canary.suites import load_suites  # noqa: E402
from db_faults import SqliteWriteLock, TcpProxy  # noqa: E402
from slack_stub import Reply, SlackStub  # noqa: E402

PY = sys.executable
KEY_ENV = "FAULTS_SIM_KEY"
SUITE = """\
suite: basics
repeat: {repeat}
cases:
  - id: capital
    prompt: What is the capital of France? One word.
    assert: [{{type: icontains, value: paris}}]
    reference: {{text: Paris}}
  - id: sum
    prompt: "What is 12 + 30? End with ANSWER: <n>."
    answer: {{regex: "ANSWER:\\\\s*(\\\\S+)"}}
    assert: [{{type: number, value: 42}}]
    reference: {{text: "12 + 30 = 42\\nANSWER: 42"}}
  - id: planet
    prompt: Which planet is called the red planet? One word.
    assert: [{{type: icontains, value: mars}}]
    reference: {{text: Mars}}
"""


class Result(NamedTuple):
    fault: str
    outcome: str
    recover_s: float | None  # from the end of the fault to the work done


# --- the world around canary -------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, log: Path | None = None, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise SystemExit(f"timed out after {timeout} s waiting for {what}\n{tail}")


def healthz(port: int) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


def just_passed() -> str:
    """A daily cron whose latest time is the minute that just passed (the catch-up rule runs it)."""
    t = datetime.now(timezone.utc) - timedelta(minutes=1)
    return f"{t.minute} {t.hour} * * *"


class Project:
    """canary.yaml, a suite and the simulated model; `spawn` runs `canary ...` with its log in a file."""

    def __init__(self, root: Path, database: str, *, repeat: int = 3, schedule: str = "0 0 1 1 *",
                 daemon: str = "", models: int = 2, extra: str = "", latency: float = 0.02):
        self.root, self.database = root, database
        (root / "prompts").mkdir(parents=True, exist_ok=True)
        (root / "prompts" / "basics.yaml").write_text(SUITE.format(repeat=repeat))
        suites, _ = load_suites(root / "prompts")
        self.sim = SimServer(suites, latency=latency).__enter__()
        wires = [("claude", "anthropic", ""), ("gpt", "openai", "/v1")][:models]
        lines = "".join(f"  - {{name: {n}, provider: {p}, model: {n}-x, base_url: '{self.sim.url}{suffix}', "
                        f"api_key_env: {KEY_ENV}, concurrency: 2}}\n" for n, p, suffix in wires)
        self.http_port = free_port()
        (root / "canary.yaml").write_text(
            f"database: {database}\nschedule: '{schedule}'\nmodels:\n{lines}detection: {{confirm: false}}\n{extra}"
            f"daemon: {{http: '127.0.0.1:{self.http_port}', catch_up: 1h{', ' + daemon if daemon else ''}}}\n")
        self.procs: list[subprocess.Popen] = []

    def spawn(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        log = self.root / f"proc{len(self.procs)}.log"
        with open(log, "w") as out:
            p = subprocess.Popen([PY, "-m", "canary.cli", *args, "--config", str(self.root / "canary.yaml")],
                                 stdout=out, stderr=subprocess.STDOUT, cwd=self.root,
                                 env={**os.environ, KEY_ENV: "faults", **(env or {})})
        p.log = log
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        self.sim.__exit__(None, None, None)


def run_counts(url: str) -> list[tuple]:
    """(model, status, planned, stored samples) of every run, read with a connection of our own."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(runs.c.id, runs.c.model, runs.c.status, runs.c.planned)).all()
            return [(r.model, r.status, r.planned, conn.execute(
                select(samples.c.id).where(samples.c.run_id == r.id)).all().__len__()) for r in rows]
    except Exception:
        return []
    finally:
        engine.dispose()


def all_complete(url: str, n: int):
    rows = run_counts(url)
    return len(rows) == n and all(status == "complete" and stored == planned for _m, status, planned, stored in rows)


def stop(p: subprocess.Popen) -> int:
    p.send_signal(signal.SIGTERM)
    return p.wait(60)


@contextmanager
def pg_schema(pg_url: str):
    """A schema of our own on the shared server, dropped at the end; yields its URL."""
    name = f"faults_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield make_url(pg_url).update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


# --- the scenarios ------------------------------------------------------------------------------

def sqlite_lock_across_a_slot(root: Path, args) -> Result:
    db = root / "canary.db"
    Store(f"sqlite:///{db}").close()
    project = Project(root, f"sqlite:///{db}", schedule=just_passed())
    lock = SqliteWriteLock(str(db))
    try:
        lock.hold()
        t0 = time.monotonic()
        daemon = project.spawn("daemon")
        seen = set()
        while time.monotonic() - t0 < args.lock_seconds:
            if (h := healthz(project.http_port)) is not None:
                seen.add(h[1]["status"])
            time.sleep(0.5)
        lock.release()
        released = time.monotonic()
        wait_for(lambda: all_complete(f"sqlite:///{db}", 2), 180, "the slot's runs", daemon.log)
        done = time.monotonic()
        counts = run_counts(f"sqlite:///{db}")
        asked = len(project.sim.requests)
        code = stop(daemon)
    finally:
        lock.release()
        project.close()
    return Result(f"SQLite write lock held by another connection for {args.lock_seconds:.0f} s across a slot "
                  "(busy timeout 30 s)",
                  f"slot retried, ran {done - t0:.0f} s after its time: {len(counts)} runs complete, "
                  f"{sum(c[3] for c in counts)} samples stored once ({asked} asked); /healthz during the lock: "
                  f"{'/'.join(sorted(seen))}; SIGTERM exit {code}", done - released)


def postgres_restart_mid_run(root: Path, args) -> Result:
    with pg_schema(args.pg) as direct:
        Store(direct).close()
        proxy = TcpProxy.in_front_of(direct)
        project = Project(root, proxy.url(direct), schedule=just_passed(), repeat=20, latency=0.05)
        try:
            daemon = project.spawn("daemon")
            wait_for(lambda: sum(c[3] for c in run_counts(direct)) >= 10, 60, "10 stored samples", daemon.log)
            proxy.cut()
            cut_at = sum(c[3] for c in run_counts(direct))
            time.sleep(args.down_seconds)
            proxy.restore()
            restored = time.monotonic()
            wait_for(lambda: all_complete(direct, 2), 180, "the runs complete", daemon.log, every=0.25)
            done = time.monotonic()
            counts = run_counts(direct)
            asked = len(project.sim.requests)
            code = stop(daemon)
        finally:
            proxy.close()
            project.close()
    planned = sum(c[2] for c in counts)
    return Result(f"PostgreSQL gone for {args.down_seconds:.0f} s mid-run (a proxy cut: a restart to the client), "
                  f"after {cut_at} of {planned} samples",
                  f"runs resumed by the slot's retry: {len(counts)} complete, {sum(c[3] for c in counts)}/{planned} "
                  f"samples stored once; {asked - planned} sample(s) asked again (lost in flight); SIGTERM exit {code}",
                  done - restored)


def postgres_down_at_daemon_start(root: Path, args) -> Result:
    with pg_schema(args.pg) as direct:
        proxy = TcpProxy.in_front_of(direct)
        proxy.cut()
        project = Project(root, proxy.url(direct), schedule=just_passed())
        try:
            daemon = project.spawn("daemon")
            h = wait_for(lambda: healthz(project.http_port), 60, "/healthz", daemon.log)
            time.sleep(args.down_seconds)
            alive = daemon.poll() is None
            proxy.restore()
            restored = time.monotonic()
            wait_for(lambda: all_complete(direct, 2), 120, "the caught-up slot", daemon.log, every=0.25)
            done = time.monotonic()
            after = healthz(project.http_port)
            code = stop(daemon)
        finally:
            proxy.close()
            project.close()
    return Result(f"PostgreSQL unreachable for the daemon's first {args.down_seconds:.0f} s",
                  f"daemon kept running ({'alive' if alive else 'EXITED'}), /healthz {h[0]} {h[1]['status']} "
                  f"meanwhile, then {after[0]} {after[1]['status']}; the due slot ran once the database answered; "
                  f"SIGTERM exit {code}", done - restored)


def disk_full_during_canary_run(root: Path, args) -> Result:
    disk = root / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        return Result("disk full during `canary run` (SQLite on a 2 MB tmpfs)",
                      f"skipped: cannot mount a small filesystem here ({mounted.stderr.strip()})", None)
    try:
        url = f"sqlite:///{disk / 'canary.db'}"
        Store(url).close()
        project = Project(root, url, repeat=100, models=1, latency=0.005)
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * max(free - 96 * 1024, 0))  # leave 96 KB: a few dozen samples
        try:
            first = project.spawn("run")
            code = first.wait(120)
            line = first.log.read_text().strip().splitlines()[-1]
            after_fault = run_counts(url)
            filler.unlink()
            freed = time.monotonic()
            second = project.spawn("run", "--resume")
            code2 = second.wait(120)
            done = time.monotonic()
            notes = [ln for ln in second.log.read_text().splitlines() if ln.startswith("canary:")]
            final = run_counts(url)
        finally:
            project.close()
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    (model, status, planned, stored), = after_fault
    return Result("disk full during `canary run` (SQLite on a 2 MB tmpfs, 96 KB left)",
                  f"exit {code}: {line!r}; the run {status} with {stored}/{planned} samples kept. Space freed, "
                  f"`canary run --resume`: exit {code2}, {' / '.join(notes)}; run {final[0][1]}, "
                  f"{final[0][3]}/{final[0][2]} samples", done - freed)


def slack_404_and_retry_after_date(root: Path, args) -> Result:
    url = f"sqlite:///{root / 'canary.db'}"
    store = Store(url)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for model in ("gone", "busy"):
        alerts.open_alert(store, model=model, suite="basics", kind="quality", run_id=None, details={"reason": "r"},
                          message={"text": f"canary: {model}", "blocks": []}, now=now)
    date = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    with SlackStub(script=[Reply(404, "no_service"), Reply(429, "ratelimited", {"Retry-After": date})]) as slack:
        project = Project(root, url, models=1, extra="alerts: {slack: {webhook_url_env: FAULTS_HOOK}}\n")
        try:
            t0 = time.monotonic()
            daemon = project.spawn("daemon", env={"FAULTS_HOOK": slack.url + "/services/T/B/X"})
            wait_for(lambda: len(slack.refused) == 2, 30, "two refusals", daemon.log)
            h = wait_for(lambda: healthz(project.http_port), 30, "/healthz", daemon.log)
            wait_for(lambda: slack.accepted, 90, "the rate-limited message", daemon.log, every=0.25)
            done = time.monotonic()
            time.sleep(1)
            with store.begin() as conn:
                states = dict(conn.execute(select(outbox.c.message["text"].as_string(), outbox.c.state)).all())
            refused = list(slack.refused)
            code = stop(daemon)
            errors = len(re.findall("refused alert message .* for good", daemon.log.read_text()))
        finally:
            project.close()
            store.close()
    return Result("Slack answers 404 no_service to one message, 429 with `Retry-After: <HTTP date +20 s>` to another",
                  f"404: marked {states['canary: gone']}, {errors} ERROR line, not retried (Slack saw {refused}); "
                  f"/healthz {h[0]} {h[1]['status']}; the 429 message {states['canary: busy']} at the first outbox "
                  f"pass after the date; SIGTERM exit {code}", done - t0)


SCENARIOS = [sqlite_lock_across_a_slot, postgres_restart_mid_run, postgres_down_at_daemon_start,
             disk_full_during_canary_run, slack_404_and_retry_after_date]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=[s.__name__ for s in SCENARIOS])
    ap.add_argument("--pg", default=os.environ.get("CANARY_TEST_POSTGRES_URL",
                                                   "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--lock-seconds", type=float, default=45.0)
    ap.add_argument("--down-seconds", type=float, default=10.0)
    args = ap.parse_args()
    print(f"fault benchmark (infrastructure), Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    for scenario in SCENARIOS:
        if args.only and scenario.__name__ not in args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="canary-faults-") as tmp:
            started = time.monotonic()
            result = scenario(Path(tmp), args)
        took = time.monotonic() - started
        recover = "-" if result.recover_s is None else f"{result.recover_s:.1f} s"
        print(f"\n## {scenario.__name__} ({took:.0f} s)\nfault:    {result.fault}\noutcome:  {result.outcome}\n"
              f"recovery: {recover}", flush=True)


if __name__ == "__main__":
    main()
