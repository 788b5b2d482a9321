"""The report: its view model, its page, and the page in a real browser (headless Chromium),
written by `canary report` and served by the daemon's `/`, from a history made by really
running the simulated model: healthy days, an API outage, a regression caught, confirmed
and recovered from. The view model is built on SQLite and PostgreSQL.
"""
from __future__ import annotations

import asyncio
import re
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import browser
from suite_texts import CAPITAL_AND_SUM, suite
from canary import report_view
from canary.cli import main
from canary.config import load_config
from canary.daemon import Daemon
from canary.service import Service
from canary.demo import simulate
from canary.report_charts import date_ticks, rate_scale
from canary.report_html import bucket, render
from canary.runner import endpoint_factory
from canary.sim import SimServer
from canary.store import Store
from canary.suites import load_suites

START = datetime(2026, 11, 1, 6)
# "<b>hard</b>" is answered with its reference, which fails its own assert: always failing,
# and its answer and id are markup that the page must escape
SUITE = suite("basics", 3, CAPITAL_AND_SUM) + """\
  - id: "<b>hard</b>"
    prompt: Name the smallest prime above 100.
    assert: [{type: icontains, value: "101"}]
    reference: {text: "<script>alert('x')</script> 97"}
  - id: lower
    turns:
      - user: Answer in lowercase only. Which planet is red?
        assert: [{type: icontains, value: mars}]
        reference: {text: mars.}
      - user: And the largest one?
        assert: [{type: icontains, value: jupiter}]
        reference: {text: jupiter.}
"""
# day by day: healthy, an outage on day 7 (too few answers for a verdict), the regression on
# day 8 (breach, confirmation run, alert), back to normal on day 9
DAYS = [{}] * 6 + [{"error_rate": 0.8}, {"wrong_rate": 1.0}, {}]


def write_project(root: Path, db_url: str) -> None:
    (root / "prompts").mkdir(exist_ok=True)
    (root / "prompts" / "basics.yaml").write_text(SUITE)
    (root / "canary.yaml").write_text(textwrap.dedent(f"""\
        database: {db_url}
        schedule: "0 6 1 1 *"
        models:
          - {{name: claude, provider: anthropic, model: claude-sim, price: {{input: 5.0, output: 25.0}}}}
        daemon: {{http: "127.0.0.1:0", catch_up: 1m}}
        """))


def make_history(root: Path, db_url: str):
    """The project and its simulated days: (root, config, suites)."""
    write_project(root, db_url)
    config = load_config(root / "canary.yaml")
    suites, problems = load_suites(root / "prompts")
    assert not problems
    store = Store(config.database_url)
    simulate(store, config, suites, DAYS, start=START)
    store.close()
    return root, config, suites


@pytest.fixture
def history(tmp_path, db_url):
    """On SQLite and PostgreSQL: what reads the database."""
    return make_history(tmp_path, db_url)


@pytest.fixture(scope="module")
def sqlite_history(tmp_path_factory):
    """Made once: what only renders (the page, the browser)."""
    root = tmp_path_factory.mktemp("history")
    return make_history(root, f"sqlite:///{root / 'canary.db'}")


def build(config, suites):
    store = Store(config.database_url)
    try:
        return report_view.build(store, config, suites, START + timedelta(days=len(DAYS)))
    finally:
        store.close()


def test_the_view_model_holds_points_bands_episodes_and_the_case_grid(history):
    _root, config, suites = history
    [s] = build(config, suites).series
    assert (s.model, s.suite, len(s.points)) == ("claude", "basics", 9)
    outage, regression, recovery = s.points[6], s.points[7], s.points[8]
    assert not outage.judged and outage.error_heavy and outage.verdict == "no_verdict"
    assert regression.confirmed and regression.verdict == "breach" and regression.rate == 0.0
    assert recovery.verdict == "ok" and s.state == "ok" and s.open_alerts == []
    assert all(p.cost and p.cost > 0 for p in s.points if p.answered)
    assert all(p.mean is not None for p in s.points[5:] if p.judged)  # min_history 5
    spans = {(ep.kind, ep.start, ep.end) for ep in s.episodes}
    assert ("quality", 7, 8) in spans and ("availability", 6, 7) in spans

    grid = s.grid
    assert grid.columns == [p.slot for p in s.points] and grid.left_out == 0
    rows = {r.case: r for r in grid.rows}
    assert set(rows) == {"capital", "sum", "<b>hard</b>", "lower"} and grid.clean == 0
    hard = rows["<b>hard</b>"]
    assert hard.standing == "always" and hard.baseline_rate == 0.0
    assert hard.cells[0] == (0, 3)
    assert sorted(r.cells[6] for r in grid.rows).count((0, 0)) == 3  # the outage: 3 of 4 cases only errored
    assert grid.rows[0].case == "<b>hard</b>"  # failing in the latest run: first
    f = hard.failure
    assert f.slot == s.points[-1].slot and f.answer == "<script>alert('x')</script> 97"
    assert f.reference == "<script>alert('x')</script> 97" and f.prompt == "Name the smallest prime above 100."
    assert f.checks == ["icontains: contains \"101\": no, reply \"<script>alert('x')</script> 97\""]
    assert f.request_id.startswith("req_")
    assert rows["lower"].failure.turns == 2 and rows["lower"].failure.turn == 0  # the wrong day failed turn 1
    assert rows["capital"].standing is None and rows["capital"].cells[7] == (0, 6)  # with its confirmation run


def test_the_page_escapes_everything_and_shows_no_raw_values(sqlite_history):
    _root, config, suites = sqlite_history
    page = render(build(config, suites))
    assert page.count("<script") == 1  # the report's own script; the answer's is text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; 97" in page
    assert "&lt;b&gt;hard&lt;/b&gt;" in page and "<b>hard</b>" not in page
    assert "no_verdict" not in page and "None" not in page and "nan" not in page.lower().split("<script")[0]
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", page)  # no microsecond timestamps
    assert "http://" not in page and "https://" not in page  # no network: nothing fetched
    assert 'class="ep q"' in page and 'class="outage"' in page and "dot breach" in page
    assert page.count('<details class="crow">') == 4 and "always failing" in page


def test_scales_ticks_and_colours():
    pts = [report_view.PointView(START, [1], r, 0, 30, 0, m, lo, "ok", False, False, True, None, None, None)
           for r, m, lo in ((0.97, 0.95, 0.9), (0.93, 0.95, 0.9))]
    lo, hi = rate_scale(pts)
    assert 0.85 < lo < 0.9 and 0.97 < hi < 1.01  # zoomed to the data and the band, not 0..100%
    days = [START + timedelta(days=i) for i in range(30)]
    labels = date_ticks(days)
    assert [t for _, t, minor in labels if not minor] == ["Nov 1", "Nov 11", "Nov 20", "Nov 30"]
    assert len(labels) == 7 and date_ticks(days[:1]) == [(0, "06:00", False)]
    assert [bucket(c) for c in ((3, 3), (5, 6), (1, 2), (1, 3), (0, 3), (0, 0), None)] == \
        ["c0", "c1", "c2", "c3", "c4", "cE", ""]


def test_an_empty_database_gives_a_page_too(tmp_path, db_url):
    write_project(tmp_path, db_url)
    config = load_config(tmp_path / "canary.yaml")
    suites, _ = load_suites(tmp_path / "prompts")
    view = build(config, suites)
    assert [s.state for s in view.series] == ["no_runs"]
    assert "No completed run yet" in render(view)


# --- in a real browser ------------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(browser.chromium() is None,
                                    reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")

BLUE, DARK, VERMILLION = (0x00, 0x72, 0xB2), (0x7F, 0x27, 0x04), (0xD5, 0x5E, 0x00)


def check_rendered(url: str, tmp_path: Path, name: str) -> None:
    """No script error, the charts and the grid in the DOM after the scripts ran, and a
    screenshot at 1400 px and at a phone's 400 px that really shows them."""
    page = browser.load(url)
    assert page.console == [], page.console  # any script error or console message fails
    assert 'data-js="ready"' in page.dom  # the report's script ran to its end
    assert page.dom.count('class="chart main') == 1 and page.dom.count('class="chart small') == 3
    assert page.dom.count('<svg class="cells"') == 4 and '<path class="c4"' in page.dom
    assert 'class="ftip" hidden=""' in page.dom  # the grid's tooltip, made by the script
    for width, height in ((1400, 1300), (400, 2200)):
        shot = tmp_path / f"{name}-{width}.png"
        assert browser.screenshot(url, shot, width=width, height=height, scale=0.5) == []
        w, h, px = browser.pixels(shot)
        assert (w, h) == (width // 2, height // 2)
        counts = browser.colour_counts(px, {"rate line": BLUE, "grid cells": DARK, "breach": VERMILLION})
        assert counts["rate line"] > 30 and counts["breach"] > 20 and counts["grid cells"] > 100, (width, counts)
        assert len(set(px[::97])) > 20  # not blank


@needs_chromium
def test_the_report_file_in_chromium(sqlite_history):
    root, _config, _suites = sqlite_history
    out = root / "report.html"
    result = CliRunner().invoke(main, ["report", "--config", str(root / "canary.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    check_rendered(out.as_uri(), root, "file")


POINTER = """<script>
for (const [selector, share] of [[".chart.main .plot", 0.87], [".chart.small .plot", 0.5], ["svg.cells", 0.87]]) {
  const box = document.querySelector(selector).getBoundingClientRect();
  document.querySelector(selector).dispatchEvent(new PointerEvent("pointermove", {
    bubbles: true, clientX: box.left + box.width * share, clientY: box.top + box.height / 2}));
}
</script>"""


@needs_chromium
def test_the_tooltips_say_what_a_run_was(sqlite_history, tmp_path):
    """The pointer over the regression's run, a small chart and a grid cell: the page's script
    writes what happened, in words (the page plus a script that moves the pointer)."""
    root, config, suites = sqlite_history
    page = render(build(config, suites)).replace("</body>", POINTER + "</body>")
    (tmp_path / "pointer.html").write_text(page, encoding="utf-8")
    loaded = browser.load((tmp_path / "pointer.html").as_uri())
    assert loaded.console == []
    tips = re.findall(r'<div class="tip"[^>]*>((?:<b>[^<]*</b>)(?:<div>[^<]*</div>)*)</div>', loaded.dom)
    lines = re.findall(r"<(?:b|div)>([^<]*)</(?:b|div)>", tips[0])
    assert lines[:2] == ["Sun 8 Nov 2026, 06:00 UTC · with its confirmation run", "0.0% passed (0 of 24 answered)"]
    assert re.fullmatch(r"mean \d+\.\d%, floor \d+\.\d%: below the floor", lines[2]), lines
    assert "undefined" not in loaded.dom and "NaN" not in loaded.dom
    assert re.search(r'<div class="ftip"[^>]*><b>08 Nov 06:00</b><div>0 of 6 samples passed</div>', loaded.dom)
    assert re.fullmatch(r"<b>\w{3} \d+ Nov 2026, 06:00 UTC</b><div>\d+ tokens</div>", tips[1]), tips[1]


@needs_chromium
def test_the_daemons_page_in_chromium(sqlite_history):
    root, _config, suites = sqlite_history
    with SimServer(suites) as sim:
        daemon = Daemon(root / "canary.yaml", clock=lambda: START + timedelta(days=9, hours=1), owner="t",
                        provider_factory=endpoint_factory(sim.url, "k"))

        async def scenario():
            service = Service(daemon)
            server = asyncio.create_task(service.serve(signals=False))
            try:
                deadline = time.monotonic() + 10
                while service.web is None:
                    assert time.monotonic() < deadline, "the daemon's HTTP server never came up"
                    await asyncio.sleep(0.02)
                await asyncio.to_thread(check_rendered, service.web.url + "/", root, "daemon")
                dom = (await asyncio.to_thread(browser.load, service.web.url + "/")).dom
                assert 'href="/healthz"' in dom and 'href="/metrics"' in dom
            finally:
                service.stop()
                await asyncio.wait_for(server, 30)
        try:
            asyncio.run(scenario())
        finally:
            daemon.close()
