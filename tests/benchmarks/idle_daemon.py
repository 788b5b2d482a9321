"""Footprint of an idle `canary daemon` (run by hand, not collected by pytest).

    /work/venv/bin/python tests/benchmarks/idle_daemon.py [--seconds 60] [--scrape-every 0]

Starts `canary sim` and `canary daemon` as subprocesses: 3 models (both wire formats)
pointed at the simulator, the starter suites, a schedule far in the future (nothing runs).
Beside them, in the same run, a baseline process that imports canary and sleeps. Samples
the RSS (/proc/PID/status VmRSS) and CPU time (/proc/PID/stat utime+stime) of each for
--seconds after a short warm-up and prints them against the targets: under 120 MB RSS
and under 1% of a core. --scrape-every N also GETs /metrics every N s, as Prometheus would.
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET_RSS_MB, TARGET_CPU_PCT = 120.0, 1.0
TICKS = os.sysconf("SC_CLK_TCK")
PY = sys.executable


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="sampling time (default 60)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds after the daemon is up, not measured")
    ap.add_argument("--scrape-every", type=float, default=0.0, help="GET /metrics every N s (0: never)")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from canary.workspace import init_project

    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="canary-idle-") as tmp:
        root = Path(tmp)
        init_project(root)
        port = free_port()
        sim = f"http://127.0.0.1:{port}"
        (root / "canary.yaml").write_text(f"""\
database: sqlite:///{root / 'canary.db'}
schedule: "0 0 1 1 *"
models:
  - {{name: claude, provider: anthropic, model: claude-x, base_url: "{sim}", api_key_env: IDLE_SIM_KEY}}
  - {{name: gpt, provider: openai, model: gpt-x, base_url: "{sim}/v1", api_key_env: IDLE_SIM_KEY}}
  - {{name: local, provider: openai, model: local-x, base_url: "{sim}/v1", api_key_env: IDLE_SIM_KEY}}
daemon: {{http: "127.0.0.1:0", catch_up: 1m}}
""")
        env = {**os.environ, "IDLE_SIM_KEY": "idle-benchmark"}
        log = open(root / "daemon.log", "w")
        try:
            procs.append(subprocess.Popen([PY, "-m", "canary.cli", "sim", "--config", str(root / "canary.yaml"),
                                           "--port", str(port)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=env))
            daemon = subprocess.Popen([PY, "-m", "canary.cli", "daemon", "--config", str(root / "canary.yaml")],
                                      stdout=log, stderr=subprocess.STDOUT, env=env)
            procs.append(daemon)
            baseline = subprocess.Popen([PY, "-c", "import canary.cli, time; time.sleep(100000)"], env=env)
            procs.append(baseline)
            url = wait_for(lambda: (m := re.search(r"HTTP on (\S+)", (root / "daemon.log").read_text()))
                           and m.group(1), 60, "the daemon's HTTP line")
            time.sleep(args.warmup)
            watched = {"daemon (3 models, idle)": daemon.pid, "baseline (import canary; sleep)": baseline.pid}
            start_cpu = {k: cpu_seconds(p) for k, p in watched.items()}
            rss: dict[str, list[float]] = {k: [] for k in watched}
            t0 = next_scrape = time.monotonic()
            scrapes = 0
            while (now := time.monotonic()) - t0 < args.seconds:
                for k, pid in watched.items():
                    rss[k].append(rss_mb(pid))
                if args.scrape_every and now >= next_scrape:
                    urllib.request.urlopen(url + "/metrics", timeout=10).read()
                    scrapes += 1
                    next_scrape += args.scrape_every
                time.sleep(args.interval)
            wall = time.monotonic() - t0
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited ({daemon.returncode}):\n{(root / 'daemon.log').read_text()}")
            print(f"idle daemon footprint over {wall:.0f} s ({len(rss['daemon (3 models, idle)'])} samples, "
                  f"{scrapes} /metrics scrapes), Python {sys.version.split()[0]}")
            print(f"{'process':34} {'RSS mean MB':>12} {'RSS max MB':>11} {'CPU % core':>11}")
            for k, pid in watched.items():
                cpu = 100 * (cpu_seconds(pid) - start_cpu[k]) / wall
                print(f"{k:34} {sum(rss[k]) / len(rss[k]):12.1f} {max(rss[k]):11.1f} {cpu:11.3f}")
            d = "daemon (3 models, idle)"
            peak = max(rss[d])
            cpu = 100 * (cpu_seconds(daemon.pid) - start_cpu[d]) / wall
            print(f"targets: RSS < {TARGET_RSS_MB:.0f} MB: {'PASS' if peak < TARGET_RSS_MB else 'FAIL'} "
                  f"({peak:.1f}); CPU < {TARGET_CPU_PCT:.0f}% of a core: "
                  f"{'PASS' if cpu < TARGET_CPU_PCT else 'FAIL'} ({cpu:.3f}%)")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait(10)
            log.close()


if __name__ == "__main__":
    main()
