"""What the report's view model and page cost on a year of history (by hand).

    python tests/benchmarks/report_page.py                 # builds the year (~2 min), then measures
    python tests/benchmarks/report_page.py --keep /tmp/rp  # keep the fixture; --reuse it next time

Fixture: tests/benchmarks/history_fixture.py (5 models x 3 suites, one run a day, 156
samples a run, a few alert episodes). Printed, CPU time, best of 3, in one process (so imports and
the first database connection are out): `reports.history` for every series (what the
view model builds on: its cost belongs to the read side, issue 11), then the whole view
model (`report_view.build`), the view model minus that history, the HTML rendering, and
the page's size. Figures move with the machine's load.
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

from canary import monitor, reports, report_view  # noqa: E402
from canary.report_html import render  # noqa: E402
from canary.store import Store  # noqa: E402
from canary.workspace import open_workspace  # noqa: E402


def best(fn, n: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(n):
        t0 = time.process_time()  # CPU time: the shared machine's load moves it less than wall time
        out = fn()
        times.append(time.process_time() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="canary-report-page-"))
    if not (args.reuse and (root / "canary.db").exists()):
        shutil.rmtree(root, ignore_errors=True)
        print("built:", build(root, args.days))
    ws = open_workspace(root / "canary.yaml")
    store = Store(ws.config.database_url)
    now = datetime.utcnow()
    series = [(m.name, s) for m in ws.config.models for s in sorted(ws.suites)]
    latest = {(r.model, r.suite): r for r in store.latest_runs()}
    shared = own = 0.0
    for m, s in series:  # per series, interleaved: the read both share, then what the view adds to it
        read_s, pts = best(lambda: monitor.series(store, m, s))
        band_s, _ = best(lambda: reports.history(store, ws.config, m, s, points=pts))
        view_s, _ = best(lambda: report_view.build_series(store, ws.config, m, s, ws.suites[s], latest[m, s], [], now))
        shared += read_s + band_s
        own += max(view_s - read_s - band_s, 0.0)
    total_s, view = best(lambda: report_view.build(store, ws.config, ws.suites, now))
    render_s, page = best(lambda: render(view))
    points = sum(len(s.points) for s in view.series)
    rows = sum(len(s.grid.rows) for s in view.series if s.grid)
    print(f"{len(series)} series, {points} points, {rows} case rows in the grids ({report_view.GRID_RUNS} runs each)")
    print(f"monitor.series + reports.history, every series: {shared * 1000:7.0f} ms  (the read side's, issue 11)")
    print(f"what the view model adds (costs, grid, failures): {own * 1000:7.0f} ms  ({own / shared:.0%} of that)")
    print(f"report_view.build, whole:                       {total_s * 1000:7.0f} ms")
    print(f"render (HTML):                                  {render_s * 1000:7.0f} ms")
    print(f"page: {len(page.encode()) / 1e6:.2f} MB")
    store.close()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
