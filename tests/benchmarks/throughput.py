"""Throughput and memory of a run, against the bare official SDK in the same run (by hand).

    python tests/benchmarks/throughput.py            # N=2000, C=32, then peak RSS at N=10000
    python tests/benchmarks/throughput.py --n 500 --rss-n 0

The simulated model runs in its own process (`canary sim`) with a fixed latency, so the
server's work is not charged to either client. Two comparisons, interleaved over rounds:

- end to end, what a user runs: `canary run --json` as a process, start to exit (imports,
  config, migration check, the run, detection, the summary), against a process that
  imports the official SDK and makes the same N calls in a bare async loop at the same
  concurrency; wall time and CPU time (the kernel's accounting of each child). Target:
  both ratios <= 1.2.
- in process: the run alone (scored and committed to SQLite) against the bare loop in
  this process, which isolates the per-sample cost from the fixed cost.

Then canary's peak RSS in a child process at --rss-n samples (target <= 150 MB).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

SUITE_CASES = 20


def write_project(root: Path, port: int, concurrency: int, provider: str) -> None:
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    cases = "\n".join(
        f"""  - id: c{i}
    prompt: "Benchmark question {i}: what is {i} + {i}? End with ANSWER: <n>."
    answer: {{regex: "ANSWER:\\\\s*(\\\\S+)"}}
    assert: [{{type: number, value: {2 * i}}}]
    reference: {{text: "{i} + {i} = {2 * i}\\nANSWER: {2 * i}"}}""" for i in range(SUITE_CASES))
    (root / "prompts" / "bench.yaml").write_text(f"suite: bench\nrepeat: 1\ncases:\n{cases}\n")
    prefix = "/v1" if provider == "openai" else ""
    (root / "canary.yaml").write_text(f"""\
database: sqlite:///{root / 'bench.db'}
models:
  - name: m
    provider: {provider}
    model: bench-model
    base_url: http://127.0.0.1:{port}{prefix}
    api_key_env: BENCH_KEY
    params: {{max_tokens: 64}}
    concurrency: {concurrency}
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(root: Path, port: int, latency: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "canary.cli", "sim", "--config", str(root / "canary.yaml"),
                             "--port", str(port), "--latency", str(latency)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the simulator did not start")


def canary_run(root: Path, n: int) -> float:
    """Wall time of canary running n samples (scored and stored)."""
    from canary.monitor import run_and_watch
    from canary.workspace import open_workspace
    from canary.runner import jobs_for
    ws = open_workspace(root / "canary.yaml")
    store = ws.store()
    jobs = jobs_for(ws.config, ws.suites, repeat=n // SUITE_CASES, slot=datetime.utcnow())
    started = time.perf_counter()
    watch = asyncio.run(run_and_watch(store, ws.config, jobs))
    elapsed = time.perf_counter() - started
    [s] = watch.summaries
    assert s.passed + s.failed + s.errors == n, s
    assert s.errors == 0, f"{s.errors} errors"
    store.close()
    return elapsed


async def bare_sdk(port: int, n: int, c: int, provider: str) -> float:
    """The same n calls through the official async SDK, at the same concurrency, nothing else."""
    if provider == "openai":
        import openai
        client = openai.AsyncOpenAI(api_key="k", base_url=f"http://127.0.0.1:{port}/v1")
        call = lambda i: client.chat.completions.create(  # noqa: E731
            model="bench-model", max_tokens=64,
            messages=[{"role": "user", "content": f"Benchmark question {i % SUITE_CASES}: what is "
                       f"{i % SUITE_CASES} + {i % SUITE_CASES}? End with ANSWER: <n>."}])
    else:
        import anthropic
        client = anthropic.AsyncAnthropic(api_key="k", base_url=f"http://127.0.0.1:{port}")
        call = lambda i: client.messages.create(  # noqa: E731
            model="bench-model", max_tokens=64,
            messages=[{"role": "user", "content": f"Benchmark question {i % SUITE_CASES}: what is "
                       f"{i % SUITE_CASES} + {i % SUITE_CASES}? End with ANSWER: <n>."}])
    work = iter(range(n))

    async def worker():
        for i in work:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


BARE_SCRIPT = """
import asyncio, sys, time
n, c, port, provider = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, sys.argv[5])
from throughput import bare_sdk
asyncio.run(bare_sdk(port, n, c, provider))
"""


def process(args: list[str], env=None) -> tuple[float, float, int]:
    """(wall s, CPU s, voluntary context switches) of a child process from start to exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args[:4]} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_nvcsw


def end_to_end(root: Path, port: int, n: int, c: int, provider: str) -> tuple[tuple, tuple]:
    """((wall, CPU, switches) of `canary run`, the same of a bare SDK process), each start to exit."""
    ours = process([sys.executable, "-m", "canary.cli", "run", "--config", str(root / "canary.yaml"),
                    "--repeat", str(n // SUITE_CASES), "--json"])
    bare = process([sys.executable, "-c", BARE_SCRIPT, str(n), str(c), str(port), provider,
                    str(Path(__file__).resolve().parent)])
    return ours, bare


def child_rss(root: Path, n: int) -> None:
    canary_run(root, n)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--c", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--rss-n", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--provider", choices=["openai", "anthropic"], default="openai")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["BENCH_KEY"] = "k"
    if args.child:
        child_rss(Path(args.child), args.rss_n)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = free_port()
        write_project(root, port, args.c, args.provider)
        sim = start_sim(root, port, args.latency)
        try:
            asyncio.run(bare_sdk(port, 64, args.c, args.provider))  # warm up both sides
            process([sys.executable, "-m", "canary.cli", "db", "upgrade", "--config", str(root / "canary.yaml")])
            e2e = [end_to_end(root, port, args.n, args.c, args.provider) for _ in range(args.rounds)]
            bares, ours_ = [], []
            for _ in range(args.rounds):  # interleaved, so a busy moment hits both alike
                bares.append(asyncio.run(bare_sdk(port, args.n, args.c, args.provider)))
                ours_.append(canary_run(root, args.n))
            bare, ours = statistics.median(bares), statistics.median(ours_)
            ideal = args.n * args.latency / args.c
            print(f"N={args.n} C={args.c} latency={args.latency * 1000:.0f} ms provider={args.provider} "
                  f"(median of {args.rounds} interleaved rounds)")
            med = lambda xs: statistics.median(xs)  # noqa: E731
            cw, cc = med([o[0] for o, _ in e2e]), med([o[1] for o, _ in e2e])
            bw, bc = med([b[0] for _, b in e2e]), med([b[1] for _, b in e2e])
            print("  end to end (processes, start to exit):")
            print(f"    bare SDK process     {bw:7.2f} s wall {bc:6.2f} s CPU")
            print(f"    canary run           {cw:7.2f} s wall {cc:6.2f} s CPU")
            print(f"    canary / bare        {cw / bw:7.2f}x wall {cc / bc:5.2f}x CPU  (target <= 1.2 both)")
            print(f"    voluntary context switches: bare {med([b[2] for _, b in e2e]):,.0f}, "
                  f"canary {med([o[2] for o, _ in e2e]):,.0f} (each a thread waiting: for the GIL, a lock, I/O)")
            print("  in process (the run alone):")
            print(f"  ideal N*latency/C      {ideal:7.2f} s")
            print(f"  bare official SDK loop {bare:7.2f} s   ({bare / ideal:.2f}x ideal)")
            print(f"  canary run (+ SQLite)  {ours:7.2f} s   ({ours / ideal:.2f}x ideal)")
            print(f"  canary / bare SDK      {ours / bare:7.2f}x  (target <= 1.2)")
            if args.rss_n:
                (root / "bench.db").unlink()
                out = subprocess.run([sys.executable, __file__, "--child", str(root), "--rss-n", str(args.rss_n),
                                      "--provider", args.provider], capture_output=True, text=True, check=True)
                base = subprocess.run([sys.executable, "-c", f"import resource, canary.monitor, {args.provider};"
                                       "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"],
                                      capture_output=True, text=True, check=True)
                print(f"  peak RSS at N={args.rss_n}: {float(out.stdout.split()[-1]):.0f} MB (target <= 150 MB); "
                      f"baseline, canary and the {args.provider} SDK imported, nothing run: "
                      f"{float(base.stdout.split()[-1]):.0f} MB")
        finally:
            sim.terminate()
            sim.wait(timeout=10)


if __name__ == "__main__":
    main()
