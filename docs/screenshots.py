"""The README's report screenshot, from a simulated month (needs Debian's chromium package).

    python docs/screenshots.py            # writes docs/report.png (1400 px) and docs/report-phone.png (400 px)
    python docs/screenshots.py --keep DIR # also keeps the project, its database and report.html there

One model on the three starter suites, one scheduled run a day against the built-in
simulated model, through the same loop as the daemon (detection, confirmation, alerts):
a few wrong answers a day, an API outage on day 9 (too many errors for a verdict), a day
with many errors on day 16, and a regression of the reasoning suite on days 23 and 24,
caught, confirmed and recovered from.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

from browser import screenshot  # noqa: E402

from canary.config import load_config  # noqa: E402
from canary.demo import simulate  # noqa: E402
from canary.report_html import render_report  # noqa: E402
from canary.store import Store  # noqa: E402
from canary.suites import load_suites  # noqa: E402

CONFIG = """\
database: sqlite:///canary.db
models:
  - name: claude-opus
    provider: anthropic
    model: claude-opus-4-7
    suites: [reasoning, tool_calls, instruction_following]
    repeat: 3
    price: {input: 5.0, output: 25.0}
"""


def month() -> list[dict]:
    days = [{"wrong_rate": 0.05} for _ in range(30)]
    days[8] = {"wrong_rate": 0.05, "error_rate": 0.7}
    days[15] = {"wrong_rate": 0.05, "error_rate": 0.3}
    days[22] = days[23] = {"wrong_rate": 0.4, "suites": ["reasoning"]}
    return days


def build(root: Path) -> Path:
    """The project, a month of history, and its report.html; returns the report's path."""
    shutil.copytree(HERE.parent / "prompts", root / "prompts")
    (root / "canary.yaml").write_text(CONFIG)
    config = load_config(root / "canary.yaml")
    suites, problems = load_suites(root / "prompts")
    assert not problems, problems
    store = Store(config.database_url)
    days = simulate(store, config, suites, month(), start=datetime(2026, 10, 5, 6))
    page = root / "report.html"
    page.write_text(render_report(store, config, suites, days[-1].slot + timedelta(hours=2)), encoding="utf-8")
    store.close()
    return page


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="keep the project and report.html in this (new) directory")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="canary-screenshots-"))
    root.mkdir(parents=True, exist_ok=True)
    page = build(root)
    for name, width, height in (("report.png", 1400, 1480), ("report-phone.png", 400, 2000)):
        console = screenshot(page.as_uri(), HERE / name, width=width, height=height)
        assert not console, console
        print(f"wrote {HERE / name}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
