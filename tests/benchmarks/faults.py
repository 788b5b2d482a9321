"""The fault benchmark (by hand): replays the faults of the trial against canary as users run it.

    python tests/benchmarks/faults.py                        # every scenario, this checkout
    python tests/benchmarks/faults.py --before /tmp/main     # also on an older checkout, for comparison
    python tests/benchmarks/faults.py --only runaway --only alias

Each scenario runs the real command line in child processes (`canary run`, `canary validate`,
`canary export`), against the simulated model served by `canary sim --fault ...` from this
checkout in a process of its own. It prints the fault, what canary did, the time to recover
(until the command is done and canary is back to normal) and, measured in the same run, the
same command without the fault, with their ratio. `--before DIR` runs the same command on
another checkout (PYTHONPATH=DIR), cut off after --timeout seconds.

Scenarios are the functions in SCENARIOS, in order: the replies and files here, then the
host faults of faults_infra.py (a SQLite lock across a slot, a PostgreSQL restart mid-run and
at daemon start, a full disk, Slack 404 and Retry-After dates) against a real daemon or
`canary run`; `--skip-infra` leaves those out. Both halves print into one table.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-ant-api03-FaultBench0123456789abcdefXYZ"


@dataclass
class Outcome:
    fault: str
    result: str  # what the user sees
    seconds: float  # until canary is back to normal: the command is done
    healthy: float | None = None  # the same command without the fault, in this run
    before: str | None = None  # the same command on the --before checkout


@dataclass
class Done:
    code: int | None  # None: cut off after the timeout
    stdout: str
    stderr: str
    seconds: float


class Bench:
    """What a scenario needs: projects, the simulator in its own process, the command line."""

    def __init__(self, tmp: Path, before: Path | None, timeout: float):
        self.tmp, self.before, self.timeout = tmp, before, timeout

    def project(self, name: str, checkout: Path = ROOT) -> Path:
        """`canary init` of that checkout: its canary.yaml and its starter suites."""
        root = self.tmp / name
        self.canary(["init", str(root)], cwd=self.tmp, checkout=checkout)
        return root

    def canary(self, args: list[str], *, cwd: Path, checkout: Path = ROOT, env: dict | None = None) -> Done:
        environment = {**os.environ, "PYTHONPATH": str(checkout), **(env or {})}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", "from canary.cli import main; main()", *args], cwd=cwd,
                                env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=self.timeout)
            return Done(proc.returncode, out, err, time.perf_counter() - started)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return Done(None, out, err, time.perf_counter() - started)

    @contextlib.contextmanager
    def sim(self, project: Path, *args: str):
        """`canary sim` (this checkout) on a free port, with a fault; yields its URL."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "canary.cli", "sim", "--config", str(project / "canary.yaml"),
                                 "--port", str(port), *args], env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("the simulator did not start")
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)

    def point_at(self, project: Path, url: str, name: str) -> None:
        """canary.yaml: one model on the OpenAI wire format at the simulator, key from $FAULT_BENCH_KEY."""
        (project / "canary.yaml").write_text(textwrap.dedent(f"""\
            database: sqlite:///{project / (name + '.db')}
            models:
              - {{name: gpt, provider: openai, model: gpt-5.1, base_url: '{url}/v1', api_key_env: FAULT_BENCH_KEY,
                  max_retries: 0, repeat: 1, suites: [reasoning]}}
            """))

    def run_against(self, project: Path, fault_args: list[str], name: str, checkout: Path = ROOT) -> Done:
        """`canary run --json` of the reasoning suite against `canary sim <fault_args>`."""
        with self.sim(project, *fault_args) as url:
            self.point_at(project, url, name)
            return self.canary(["run", "--config", str(project / "canary.yaml"), "--json"], cwd=project,
                               checkout=checkout, env={"FAULT_BENCH_KEY": KEY})

    def before_run(self, fault_args: list[str], name: str) -> str | None:
        """The same run on the --before checkout, in a project that checkout initialised."""
        if self.before is None:
            return None
        project = self.project(name + "-before", self.before)
        return describe_before(self.run_against(project, fault_args, name, self.before), self.timeout)


def describe_before(done: Done, timeout: float) -> str:
    if done.code is None:
        return f"> {timeout:.0f} s, cut off"
    last = (done.stderr.strip().splitlines() or [""])[-1]
    said = f"; {last[:70]}" if "Error" in last else ""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        runs = json.loads(done.stdout)["runs"]
        said += "; " + ", ".join(f"{r['failed']} failed, {r['errors']} errors" for r in runs)
    return f"exit {done.code} after {done.seconds:.1f} s{said}"


def summary(done: Done) -> dict:
    try:
        [run] = json.loads(done.stdout)["runs"]
    except (ValueError, KeyError, TypeError):
        raise SystemExit(f"no summary (exit {done.code}): {done.stderr[-500:]}")
    return run


SCENARIOS: list[Callable[[Bench], Outcome]] = []


def scenario(fn: Callable[[Bench], Outcome]) -> Callable[[Bench], Outcome]:
    SCENARIOS.append(fn)
    return fn


# --- replies ------------------------------------------------------------------------------------

def _reply_fault(b: Bench, name: str, fault: str, fault_args: list[str], said: Callable[[Done, dict], str]) -> Outcome:
    """`canary run` of the reasoning suite against `canary sim <fault_args>`, and without the fault."""
    p = b.project(name)
    done = b.run_against(p, fault_args, name)
    healthy = b.run_against(p, [], name + "-healthy")
    return Outcome(fault, said(done, summary(done)), done.seconds, healthy.seconds, b.before_run(fault_args, name))


@scenario
def runaway(b: Bench) -> Outcome:
    """Every reply loops for 200,000 characters ('ANSWER: 4' then '. ' again and again)."""
    return _reply_fault(b, "runaway", "runaway reply (21 x 200,000 chars)", ["--fault", "runaway"], lambda done, run: (
        f"exit {done.code}: {run['failed']} failed, {run['errors']} errors (scored on the first 100,000 "
        "characters, in linear time)"))


SLOW_SUITE = textwrap.dedent("""\
        suite: slow
        cases:
          - id: backtracks
            prompt: Say a lot of a.
            assert: [{type: regex, value: '(a|aa)+$'}]
            reference: {text: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"}
        """)


@scenario
def catastrophic_regex(b: Bench) -> Outcome:
    """A case regex that backtracks forever on its reply, and what the old `re` scoring cost."""
    p = b.project("regex")
    (p / "prompts" / "slow.yaml").write_text(SLOW_SUITE)
    args = ["run", "--config", str(p / "canary.yaml"), "--sim", "--model", "gpt", "--json"]
    done = b.canary(args + ["--suite", "slow"], cwd=p)
    healthy = b.canary(args + ["--suite", "reasoning", "--repeat", "1"], cwd=p)
    run = summary(done)
    stall = _gil_stall()
    result = (f"exit {done.code}: {run['failed']} failed 'check timed out after 1 s on a reply of 61 characters'; "
              f"{stall}")
    before = None
    if b.before:
        old = b.project("regex-before", b.before)
        (old / "prompts" / "slow.yaml").write_text(SLOW_SUITE)
        before = describe_before(b.canary(["run", "--config", str(old / "canary.yaml"), "--sim", "--model", "gpt",
                                           "--json", "--suite", "slow"], cwd=old, checkout=b.before), b.timeout)
    return Outcome("catastrophic regex (a|aa)+$", result, done.seconds, healthy.seconds, before)


def _gil_stall() -> str:
    """How long a 5 ms ticker thread is stalled while a check matches: the old starter answer
    regex in `re` (which holds the GIL) against this checkout's bounded scoring."""
    sys.path.insert(0, str(ROOT))
    from canary import checks
    from canary.suites import load_suites
    old = (r"(?m)(?:^[ \t>#*_-]*(?i:final[ \t]+)?(?i:answer)|\bANSWER)[ \t*_`]*[:：][ \t*_`]*([^\n]*?)"
           r"[ \t\r*_`.]*(?:\([^\n]*\))?[ \t\r*_`.]*$")
    [new] = {c.answer.regex for c in load_suites(ROOT / "prompts")[0]["reasoning"].cases}
    text = "ANSWER: 4" + ". " * 800 + "x"

    def worst_stall(work: Callable[[], object]) -> tuple[float, float]:
        stalls, stop = [0.0], threading.Event()

        def tick():
            last = time.perf_counter()
            while not stop.is_set():
                time.sleep(0.005)
                now = time.perf_counter()
                stalls[0] = max(stalls[0], now - last - 0.005)
                last = now
        ticker = threading.Thread(target=tick)
        ticker.start()
        started = time.perf_counter()
        work()
        took = time.perf_counter() - started
        stop.set()
        ticker.join()
        return took, stalls[0]

    old_took, old_stall = worst_stall(lambda: list(re.finditer(old, text)))
    new_took, new_stall = worst_stall(lambda: checks.extract_answer(text, new))
    slow_took, slow_stall = worst_stall(lambda: checks.run([_Assert("regex", "(a|aa)+$")],
                                                            checks.TurnReply(text="a" * 60 + "!")))
    return (f"'ANSWER: 4' + '. ' x 800: old regex in re {old_took:.2f} s (other threads stalled {old_stall:.2f} s), "
            f"now {new_took * 1000:.1f} ms; a timed-out check stalls other threads {slow_stall * 1000:.0f} ms "
            f"in {slow_took:.1f} s")


@dataclass
class _Assert:
    type: str
    value: object
    tolerance: float | None = None


@scenario
def malformed_json(b: Bench) -> Outcome:
    """Every answer is a 200 whose JSON is cut in the middle."""
    return _reply_fault(b, "malformed", "malformed JSON (200, truncated)", ["--fault", "truncated_json"],
                        lambda done, run: f"exit {done.code} (no answer): {run['errors']} errors bad_response "
                                          f"(HTTP 200), run {run['status']}")


@scenario
def empty_reply(b: Bench) -> Outcome:
    """A third of the cases get a message with no content at all."""
    return _reply_fault(b, "empty", "empty reply (a third of the cases)", ["--fault", "empty", "--fault-rate", "0.33"],
                        lambda done, run: f"exit {done.code}: {run['errors']} errors empty_response, {run['failed']} "
                                          f"failed, pass rate {run['pass_rate']:.0%} of the answered")


@scenario
def echoed_key(b: Bench) -> Outcome:
    """The API answers 401 with the key in its message; is the key anywhere afterwards?"""
    p = b.project("echo")
    done = b.run_against(p, ["--fault", "echo_key"], "echo")
    exported = b.canary(["export", "--config", str(p / "canary.yaml")], cwd=p, env={"FAULT_BENCH_KEY": KEY})
    found = _key_count(p / "echo.db", done, exported)
    result = f"exit {done.code}: errors auth 401, the key found {found} times in the database, export and output"
    before = None
    if b.before:
        q = b.project("echo-before", b.before)
        old = b.run_against(q, ["--fault", "echo_key"], "echo", b.before)
        old_export = b.canary(["export", "--config", str(q / "canary.yaml")], cwd=q, checkout=b.before,
                              env={"FAULT_BENCH_KEY": KEY})
        before = f"the key found {_key_count(q / 'echo.db', old, old_export)} times"
    return Outcome("API key echoed in a 401", result, done.seconds + exported.seconds, None, before)


def _key_count(db: Path, *outputs: Done) -> int:
    data = db.read_bytes() if db.exists() else b""
    return data.count(KEY.encode()) + sum((o.stdout + o.stderr).count(KEY) for o in outputs)


# --- files --------------------------------------------------------------------------------------

def _bad_file(b: Bench, name: str, fault: str, data: bytes) -> Outcome:
    p = b.project(name)
    healthy = b.canary(["validate", "--config", str(p / "canary.yaml")], cwd=p)
    (p / "prompts" / "bad.yaml").write_bytes(data)
    done = b.canary(["validate", "--config", str(p / "canary.yaml")], cwd=p)
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    result = f"exit {done.code}: {lines[-1].replace(str(p) + '/', '')[:90] if lines else ''}"
    before = None
    if b.before:
        q = b.project(name + "-before", b.before)
        (q / "prompts" / "bad.yaml").write_bytes(data)
        before = describe_before(b.canary(["validate", "--config", str(q / "canary.yaml")], cwd=q,
                                          checkout=b.before), b.timeout)
    return Outcome(fault, result, done.seconds, healthy.seconds, before)


@scenario
def alias_bomb(b: Bench) -> Outcome:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return _bad_file(b, "alias", "alias bomb (billion laughs)", ("\n".join(lines) + "\n").encode())


@scenario
def binary_file(b: Bench) -> Outcome:
    return _bad_file(b, "binary", "binary file in prompts/", os.urandom(64 * 1024))


@scenario
def deep_nesting(b: Bench) -> Outcome:
    return _bad_file(b, "deep", "deep nesting ('[' x 20000)", b"[" * 20000)


# --- the table ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="an older checkout to run the same commands on")
    parser.add_argument("--timeout", type=float, default=60.0, help="cut a command off after this many seconds")
    parser.add_argument("--only", action="append", default=[], help="scenarios whose name contains this")
    parser.add_argument("--skip-infra", action="store_true", help="only the reply and file scenarios")
    parser.add_argument("--pg", default=os.environ.get("CANARY_TEST_POSTGRES_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--lock-seconds", type=float, default=45.0, help="infra: how long SQLite stays locked")
    parser.add_argument("--down-seconds", type=float, default=10.0, help="infra: how long PostgreSQL is away")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.only or any(o in s.__name__ for o in args.only)]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import faults_infra
    infra = [] if args.skip_infra else [
        s for s in faults_infra.SCENARIOS if not args.only or any(o in s.__name__ for o in args.only)]
    print(f"{len(chosen) + len(infra)} fault scenarios, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores{', before: ' + str(args.before) if args.before else ''}\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="canary-faults-") as tmp:
        bench = Bench(Path(tmp), args.before, args.timeout)
        for fn in chosen:
            o = fn(bench)
            ratio = f"{o.seconds / o.healthy:.2f}x" if o.healthy else "-"
            healthy = f"{o.healthy:.2f} s" if o.healthy else "-"
            rows.append((o.fault, o.result, f"{o.seconds:.2f} s", healthy, ratio, o.before or "-"))
            print(f"{o.fault}\n  outcome: {o.result}\n  recovered in {o.seconds:.2f} s "
                  f"(without the fault {healthy}, {ratio})" + (f"\n  before: {o.before}" if o.before else ""),
                  flush=True)
        for fn in infra:
            with tempfile.TemporaryDirectory(prefix="canary-faults-", dir=tmp) as scratch:
                r = fn(Path(scratch), args)
            recover = "-" if r.recover_s is None else f"{r.recover_s:.1f} s"
            rows.append((r.fault, r.outcome, recover, "-", "-", "-"))
            print(f"{r.fault}\n  outcome: {r.outcome}\n  recovered in {recover}", flush=True)
    print("\n| fault | outcome | time to recover | without the fault | ratio | before |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
