"""Read side and start-up at a year of history, against one month in the same run (by hand).

    python tests/benchmarks/read_side.py              # builds both fixtures (~2 min), then measures
    python tests/benchmarks/read_side.py --keep /tmp/rs --reuse   # keep the fixtures, reuse them next time

Every figure is the code users run: `canary ...` as a child process, start to exit (wall
time, CPU time and peak RSS from the kernel's accounting of that child), and the daemon's
`/` over HTTP from a real `canary daemon`. Fixtures: tests/benchmarks/history_fixture.py
(5 models x 3 suites x 156 samples a run, one run a day: 854k samples a year).

Printed per command: the month's and the year's figures and their ratio (growth), with the
targets of the read-side issue: status, history and report <= 0.5 s at a year; `/` <= 50 ms
once cached; export >= 25k samples/s; import >= 10k samples/s with peak RSS flat (<= 1.3x
between 4k and 40k samples); `canary --version` <= 2.5x `python -c "import click"`;
status on 1,000 days of a series within 1.25x of 100 days; `canary failures --model opus`
(what a user runs after an alert) beside them, without a target. Then, beside the targets, a
fingerprinted model's reads (status, its history, `fingerprint status`) at 30 and 365 days
of probes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "BENCH_KEY": "bench-not-a-key"}


def child(args: list[str], *, stdout=subprocess.DEVNULL, cwd=None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one child process, from the kernel's accounting."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=stdout, stderr=subprocess.PIPE, env=ENV, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def build(root: Path, days: int, *options: str) -> dict:
    """The fixture (history_fixture.py) built by a child process: a child's peak RSS counts
    the memory of the process it was forked from (Linux keeps the high-water mark across
    exec), so this process stays as small as it can and imports no part of canary."""
    shutil.rmtree(root, ignore_errors=True)
    out = subprocess.run([sys.executable, str(HERE / "history_fixture.py"), "--days", str(days), "--dir", str(root),
                          *options], env=ENV, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"building {root} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(args: list[str], n: int = 3, **kw) -> tuple[float, float, float]:
    """The fastest of n runs (the least disturbed by the rest of the machine)."""
    runs = [child(args, **kw) for _ in range(n)]
    return min(runs, key=lambda r: r[0])


def canary(root: Path, *args: str) -> list[str]:
    """`canary ARGS --config ROOT/canary.yaml` (after the subcommand: `db upgrade` and
    `fingerprint status` have two words)."""
    n = 2 if args[0] in ("db", "fingerprint") else 1
    return [sys.executable, "-m", "canary.cli", *args[:n], "--config", str(root / "canary.yaml"), *args[n:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_page(root: Path, n: int = 10) -> tuple[float, float, float]:
    """(first `/` in s, median of the next n in s, median `/metrics` scrape in s) from a real
    `canary daemon`, over HTTP."""
    port = free_port()
    text = (root / "canary.yaml").read_text()
    (root / "canary.yaml").write_text(text.replace("http: 127.0.0.1:0", f"http: 127.0.0.1:{port}"))
    proc = subprocess.Popen(canary(root, "daemon"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the daemon did not come up: " + (proc.stderr.read().decode()[-2000:]
                                                                      if proc.poll() is not None else "timeout"))
                time.sleep(0.2)
        times = []
        for _ in range(n + 1):
            t0 = time.perf_counter()
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60).read()
            times.append(time.perf_counter() - t0)
            assert b"<svg" in body or b"<html" in body.lower()
        scrapes = []
        for _ in range(n):
            t0 = time.perf_counter()
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read()
            scrapes.append(time.perf_counter() - t0)
            assert b"canary_alert_floor" in body
        return times[0], statistics.median(times[1:]), statistics.median(scrapes)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        (root / "canary.yaml").write_text(text)


def measure(root: Path, samples: int, work: Path) -> dict:
    out = {}
    out["status"] = best(canary(root, "status"))
    out["history"] = best(canary(root, "history", "--model", "opus", "--suite", "reasoning"))
    out["report"] = best(canary(root, "report", "--out", str(work / "report.html")))
    out["failures"] = best(canary(root, "failures", "--model", "opus"))
    out["page_first"], out["page_cached"], out["metrics"] = daemon_page(root)
    dump = work / "export.jsonl"
    with dump.open("w") as f:
        out["export"] = child(canary(root, "export"), stdout=f)
    out["export_rate"] = samples / out["export"][0]
    target = work / "import"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    (target / "canary.yaml").write_text((root / "canary.yaml").read_text().replace(str(root), str(target)))
    shutil.copytree(root / "prompts", target / "prompts")
    child(canary(target, "db", "upgrade"))
    out["import"] = child(canary(target, "import", str(dump)))
    out["import_rate"] = samples / out["import"][0]
    return out


def import_memory(dump: Path, work: Path, root: Path) -> dict[int, float]:
    """Peak RSS of `canary import` at 4k and 40k samples (memory must not grow with the file)."""
    out = {}
    for n in (4000, 40000):
        part = work / f"part{n}.jsonl"
        with dump.open() as src, part.open("w") as dst:
            for i, line in enumerate(src):
                if i >= n:
                    break
                dst.write(line)
        target = work / f"imp{n}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        (target / "canary.yaml").write_text((root / "canary.yaml").read_text().replace(str(root), str(target)))
        shutil.copytree(root / "prompts", target / "prompts")
        child(canary(target, "db", "upgrade"))
        out[n] = child(canary(target, "import", str(part)))[2]
    return out


def status_growth(base: Path, reuse: bool) -> dict[int, float]:
    """Wall time of `canary status` (best of 5) on one model's three series of 100 and 1,000
    days (10 cases x 3 samples a run): what status reads must not grow with the history."""
    out = {}
    for days in (100, 1000):
        root = base / f"series{days}"
        if not (reuse and (root / "canary.db").exists()):
            build(root, days, "--models", "1", "--cases", "10")
        out[days] = best(canary(root, "status"), 5)[0]
    return out


def fingerprint_reads(base: Path, reuse: bool) -> dict[int, dict]:
    """status, history of the fingerprint series and `fingerprint status` (best of 3) on one
    fingerprinted model (10 cases x 3 suites, and a probe a day of 20 inputs x 10 samples)
    at 30 and 365 days: a fingerprint's reads must not grow with its probes' answers."""
    out = {}
    for days in (30, 365):
        root = base / f"fingerprint{days}"
        if not (reuse and (root / "canary.db").exists()):
            build(root, days, "--models", "1", "--cases", "10", "--fingerprint")
        out[days] = {"status": best(canary(root, "status")),
                     "history": best(canary(root, "history", "--model", "opus", "--suite", "fingerprint")),
                     "fingerprint status": best(canary(root, "fingerprint", "status"))}
    return out


def fmt(wall_cpu_rss) -> str:
    wall, cpu, rss = wall_cpu_rss
    return f"{wall:6.2f} s wall {cpu:6.2f} s CPU {rss:5.0f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="build the fixtures here and keep them")
    ap.add_argument("--reuse", action="store_true", help="reuse fixtures already in --keep")
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="canary-read-side-"))
    work = base / "work"
    work.mkdir(parents=True, exist_ok=True)
    spans = {"month": 30, "year": args.days}
    sizes = {}
    for name, days in spans.items():
        root = base / name
        if not (args.reuse and (root / "canary.db").exists()):
            built = build(root, days)
            print(f"built {name}: {built['runs']} runs, {built['samples']} samples in {built['seconds']:.0f} s")
        sizes[name] = 5 * 3 * days * 156

    click = best([sys.executable, "-c", "import click"], 5)
    version = best([sys.executable, "-m", "canary.cli", "--version"], 5)
    print(f"\nstart-up: canary --version {version[0] * 1000:.0f} ms, python -c 'import click' {click[0] * 1000:.0f} ms: "
          f"{version[0] / click[0]:.2f}x (target <= 2.5x)")

    results = {name: measure(base / name, sizes[name], work) for name in spans}
    m, y = results["month"], results["year"]
    print(f"\n{'':10} {'one month (' + format(sizes['month'], ',') + ' samples)':>44} "
          f"{'a year (' + format(sizes['year'], ',') + ' samples)':>44}  year/month  target at a year")
    for key, target in (("status", "<= 0.5 s"), ("history", "<= 0.5 s"), ("report", "<= 0.5 s"), ("failures", ""),
                        ("export", ">= 25k samples/s"), ("import", ">= 10k samples/s")):
        print(f"{key:10} {fmt(m[key]):>44} {fmt(y[key]):>44}  {y[key][0] / m[key][0]:9.2f}x  {target}")
    print(f"{'/ first':10} {m['page_first'] * 1000:41.0f} ms {y['page_first'] * 1000:41.0f} ms  "
          f"{y['page_first'] / m['page_first']:9.2f}x")
    print(f"{'/ cached':10} {m['page_cached'] * 1000:41.1f} ms {y['page_cached'] * 1000:41.1f} ms  "
          f"{y['page_cached'] / m['page_cached']:9.2f}x  <= 50 ms")
    print(f"{'/metrics':10} {m['metrics'] * 1000:41.1f} ms {y['metrics'] * 1000:41.1f} ms  "
          f"{y['metrics'] / m['metrics']:9.2f}x")
    print(f"{'export':10} {m['export_rate']:38,.0f} samples/s {y['export_rate']:35,.0f} samples/s")
    print(f"{'import':10} {m['import_rate']:38,.0f} samples/s {y['import_rate']:35,.0f} samples/s")
    growth = status_growth(base, args.reuse)
    print(f"\nstatus on one model's series: {growth[100] * 1000:.0f} ms at 100 days, {growth[1000] * 1000:.0f} ms "
          f"at 1,000 days: {growth[1000] / growth[100]:.2f}x (target <= 1.25x)")
    fp = fingerprint_reads(base, args.reuse)
    print(f"\none fingerprinted model, a probe a day (200 samples): {'30 days':>36} {'365 days':>38}  365/30")
    for key in fp[30]:
        print(f"{key:18} {fmt(fp[30][key]):>44} {fmt(fp[365][key]):>44}  {fp[365][key][0] / fp[30][key][0]:5.2f}x")
    mem = import_memory(work / "export.jsonl", work, base / "year")
    print(f"\nimport peak RSS: {mem[4000]:.0f} MB at 4k samples, {mem[40000]:.0f} MB at 40k: "
          f"{mem[40000] / mem[4000]:.2f}x (target <= 1.3x)")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
