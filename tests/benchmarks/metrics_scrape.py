"""What `canary_baseline_mean` and `canary_alert_floor` add to a /metrics scrape, on a year of history (by hand).

    python tests/benchmarks/metrics_scrape.py                 # builds the year (~2 min), then measures
    python tests/benchmarks/metrics_scrape.py --keep /tmp/ms  # keep the fixture; --reuse it next time

Fixture: tests/benchmarks/history_fixture.py (5 models x 3 suites, one run a day). Printed,
CPU time, best of 3, in one process: a scrape without the two families (the baseline,
measured in the same run), a scrape with them, and `reports.status` alone, which they are
read from (so their cost is the read side's: issue 11).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]
from history_fixture import build  # noqa: E402

from canary import reports  # noqa: E402
from canary.store import Store  # noqa: E402
from canary.web import Metrics  # noqa: E402
from canary.workspace import open_workspace  # noqa: E402


def best(fn, n: int = 3) -> tuple[float, object]:
    """The least CPU time of n calls (the shared machine's load moves it less than wall time), and a result."""
    times, out = [], None
    for _ in range(n):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="canary-metrics-scrape-"))
    if not (args.reuse and (root / "canary.db").exists()):
        shutil.rmtree(root, ignore_errors=True)
        print("built:", build(root, args.days))
    ws = open_workspace(root / "canary.yaml")
    store = Store(ws.config.database_url)
    without = Metrics(lambda: store, lambda: ws.config)
    with_them = Metrics(lambda: store, lambda: ws.config, lambda: ws.suites)
    base_s, base = best(without.render)
    full_s, full = best(with_them.render)
    status_s, rows = best(lambda: reports.status(store, ws.config, ws.suites, datetime.utcnow()))
    added = full.decode().count("\ncanary_baseline_mean{") + full.decode().count("\ncanary_alert_floor{")
    print(f"{len(rows)} status rows; {added} samples added to the scrape ({len(full) - len(base)} bytes)")
    print(f"scrape without the two families (baseline): {base_s * 1000:7.0f} ms")
    print(f"scrape with them:                           {full_s * 1000:7.0f} ms  ({full_s / base_s:.1f}x)")
    print(f"reports.status alone:                       {status_s * 1000:7.0f} ms")
    store.close()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
