"""Two canary installs timed on the same commands, interleaved (by hand): a change's before and after.

    git worktree add /tmp/before 5bfdd1c && python -m venv /tmp/before-venv
    /tmp/before-venv/bin/pip install /tmp/before
    python tests/benchmarks/versus.py --other /tmp/before-venv/bin/python --config /tmp/rs/year/canary.yaml

Each command runs as users run it (`python -m canary.cli ...`, a process, start to exit)
under this interpreter's canary and under the other's, alternately, `--rounds` times
`--runs` runs; printed: the fastest wall time of each and their ratio (this / other). Run
it from outside the repository, or this checkout's `canary/` shadows the other install.
The default commands are the read side's: `--version`, validate, status, history and
report (on a fixture of read_side.py, `--keep DIR`).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def fastest(python: str, args: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run([python, "-m", "canary.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        best = min(best, time.perf_counter() - t0)
        if out.returncode != 0:
            raise SystemExit(f"{python} -m canary.cli {' '.join(args)} exited {out.returncode}: "
                             f"{out.stderr.decode()[-1000:]}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=True, help="the python of a venv with the other canary installed")
    parser.add_argument("--config", required=True)
    parser.add_argument("--model", default="opus")
    parser.add_argument("--suite", default="reasoning")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    os.environ.setdefault("BENCH_KEY", "bench-not-a-key")
    config = ["--config", opts.config]
    commands = [["--version"], ["validate", *config], ["status", *config],
                ["history", "--model", opts.model, "--suite", opts.suite, *config],
                ["report", "--out", os.path.join(tempfile.mkdtemp(), "report.html"), *config]]
    print(f"this: {sys.executable}\nother: {opts.other}\nfastest of {opts.rounds} x {opts.runs} runs, interleaved")
    for args in commands:
        this = other = float("inf")
        for _ in range(opts.rounds):
            other = min(other, fastest(opts.other, args, opts.runs))
            this = min(this, fastest(sys.executable, args, opts.runs))
        print(f"  {' '.join(args[:1]):10s} other {other * 1000:6.0f} ms   this {this * 1000:6.0f} ms   "
              f"{this / other:.2f}x", flush=True)


if __name__ == "__main__":
    main()
