"""The daemon's HTTP side: `/healthz`, `/metrics` (Prometheus text) and `/`.

`Metrics` holds the daemon's own `CollectorRegistry` (never the global one). Counters and
the latency histogram count what this process did (they restart at zero with it, as
Prometheus counters do); pass rates, alert state and the outbox are read from the database
at scrape time, so every replica reports the same state of the shared series.
`WebServer` serves them from a thread, so a busy event loop never delays a health check.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .store import Store

log = logging.getLogger("canary.web")

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


def series_rows(store: Store, config, suites: dict) -> list[dict]:
    """The quality series' rows of `canary status` (its latest points, confirmation runs pooled)."""
    from .reports import status
    from .clock import utcnow
    return status(store, config, suites, utcnow(), fingerprint=False)


def judgement_families(rows: list[dict]) -> list:
    """`canary_baseline_mean` and `canary_alert_floor` per series: the expected pass rate and the
    band floor of its latest point, the figures `canary status` shows (its rows, not a second
    computation), so a dashboard draws what canary judges."""
    mean = GaugeMetricFamily("canary_baseline_mean", "Pass rate the latest point was expected to have (its "
                             "baseline), as `canary status` shows it", labels=["model", "suite"])
    floor = GaugeMetricFamily("canary_alert_floor", "Pass rate below which the latest point breaches (the band "
                              "floor), as `canary status` shows it", labels=["model", "suite"])
    for row in rows:
        if row["mean"] is not None:
            mean.add_metric([row["model"], row["suite"]], row["mean"])
        if row["lower"] is not None:
            floor.add_metric([row["model"], row["suite"]], row["lower"])
    return [mean, floor]


class _StateCollector(Collector):
    """Pass rate, baseline and floor per series, each model's last success, open alerts and the
    outbox, read from the database per scrape."""

    def __init__(self, store: Callable[[], Store], config: Callable[[], object] | None = None,
                 suites: Callable[[], dict] | None = None):
        self.store, self.config, self.suites = store, config, suites

    def describe(self):
        return []  # no database query when the registry is built

    def _rows(self, store: Store) -> list[dict] | None:
        """`canary status`'s quality rows, or None (no config; or unreadable: logged, and the
        pass rates fall back to each series' latest run)."""
        if self.config is None or self.suites is None:
            return None
        try:
            return series_rows(store, self.config(), self.suites())
        except Exception as exc:
            log.warning("metrics: baselines unreadable: %s", type(exc).__name__)
            return None

    def collect(self):
        up = GaugeMetricFamily("canary_db_up", "1 when the database answered this scrape")
        try:
            store = self.store()
            rows = self._rows(store)
            # the pass rate of the point status shows (pooled with its confirmation run), beside its
            # baseline and floor; without a config, the latest run of every stored series
            rates = store.latest_pass_rates() if rows is None else [
                (r["model"], r["suite"], r["passed"], r["answered"]) for r in rows if r["answered"] is not None]
            successes = store.last_successes()
            open_alerts = store.open_alert_keys()
            box = store.outbox_counts()
        except Exception as exc:  # the scrape still answers, saying the database did not
            log.warning("metrics: database unreachable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        rate = GaugeMetricFamily("canary_pass_rate", "Pass rate of answered samples in the latest point (a run "
                                 "and its confirmation run)", labels=["model", "suite"])
        answered = GaugeMetricFamily("canary_answered_samples", "Answered samples in the latest point",
                                     labels=["model", "suite"])
        for model, suite, passed, n in rates:
            answered.add_metric([model, suite], n)
            if n:
                rate.add_metric([model, suite], passed / n)
        yield rate
        yield answered
        success = GaugeMetricFamily("canary_last_success_timestamp_seconds",
                                    "Unix time the model's latest complete scheduled run finished", labels=["model"])
        for model, finished in successes:
            if finished is not None:
                success.add_metric([model], finished.replace(tzinfo=timezone.utc).timestamp())
        yield success
        state = GaugeMetricFamily("canary_alert_open", "1 for each open alert",
                                  labels=["model", "suite", "kind"])
        for model, suite, kind in open_alerts:
            state.add_metric([model, suite, kind], 1)
        yield state
        messages = GaugeMetricFamily("canary_alert_messages", "Alert messages by delivery state",
                                     labels=["state"])
        counts = dict(box)
        for name in ("pending", "sent", "logged", "failed"):
            messages.add_metric([name], counts.get(name, 0))
        yield messages
        if rows is not None:
            yield from judgement_families(rows)
        if self.config is not None:
            from .fingerprint.views import metric_families
            try:
                yield from metric_families(store, self.config())
            except Exception as exc:  # the other families still answer
                log.warning("metrics: fingerprint series unreadable: %s", type(exc).__name__)


class Metrics:
    """Everything /metrics shows, in a registry of its own."""

    def __init__(self, store: Callable[[], Store] | None = None, config: Callable[[], object] | None = None,
                 suites: Callable[[], dict] | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("canary_runs", "Runs finished by this daemon", ["model", "suite", "kind", "status"],
                            registry=r)
        self.samples = Counter("canary_samples", "Samples by outcome (passed, failed, error)",
                               ["model", "suite", "outcome"], registry=r)
        self.errors = Counter("canary_sample_errors", "Errored samples by error class", ["model", "error"],
                              registry=r)
        self.latency = Histogram("canary_request_latency_seconds",
                                 "Model API time of one answered sample (all its calls)", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("canary_tokens", "Tokens used", ["model", "direction"], registry=r)
        self.cost = Counter("canary_cost_usd", "Cost in USD (models with a price)", ["model"], registry=r)
        self.slots = Counter("canary_slots", "Slots this daemon considered, by outcome (ran, skipped, failed, "
                             "given_up)", ["model", "outcome"], registry=r)
        self.slot_failures = Counter("canary_slot_failures", "Failed attempts at a slot (claim or run), each "
                                     "retried until daemon.catch_up ends", ["model"], registry=r)
        self.last_tick = Gauge("canary_scheduler_last_tick_timestamp_seconds", "Unix time of the last tick",
                               registry=r)
        self.config_ok = Gauge("canary_config_ok", "1 while the config on disk validates", registry=r)
        self.reloads = Counter("canary_config_reloads", "Config reloads by result (applied, rejected)",
                               ["result"], registry=r)
        self.config_ok.set(1)
        if store is not None:
            r.register(_StateCollector(store, config, suites))

    def sample(self, model: str, suite: str, row: dict) -> None:
        self.samples.labels(model, suite, row["status"]).inc()
        if row["status"] == "error":
            self.errors.labels(model, row["error"] or "unknown").inc()
        elif row.get("latency_ms") is not None:
            self.latency.labels(model).observe(row["latency_ms"] / 1000)
        self.tokens.labels(model, "input").inc(row["input_tokens"])
        self.tokens.labels(model, "output").inc(row["output_tokens"])
        if row.get("cost"):
            self.cost.labels(model).inc(row["cost"])

    def run(self, model: str, suite: str, kind: str, status: str) -> None:
        self.runs.labels(model, suite, kind, status).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class CachedPage:
    """A page built again only when what it shows changed (`version()` differs) or it is older
    than `max_age` seconds (its relative times, "next run in 3 h"): the daemon's `/` costs a
    query per request, not a report, whatever the history. One build at a time."""

    def __init__(self, build: Callable[[], str], version: Callable[[], object], max_age: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.build, self.version, self.max_age, self.clock = build, version, max_age, clock
        self._lock = threading.Lock()
        self._key: object = None
        self._page: str | None = None
        self._made = 0.0

    def __call__(self) -> str:
        key = self.version()
        with self._lock:
            if self._page is None or key != self._key or self.clock() - self._made > self.max_age:
                self._page, self._key, self._made = self.build(), key, self.clock()
            return self._page


LINKS = '<p><a href="/healthz">/healthz</a> · <a href="/metrics">/metrics</a></p>'
INDEX = ('<!doctype html><meta charset="utf-8"><title>canary</title><h1>canary daemon</h1>' + LINKS).encode()


class WebServer:
    """`/`, `/healthz` and `/metrics` on host:port (port 0: a free one), in a daemon thread."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: Callable[[], tuple[int, dict]],
                 report: Callable[[], str] | None = None):
        self.metrics, self.health, self.report = metrics, health, report
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="canary-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> "WebServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(2)

    def respond(self, path: str) -> tuple[int, str, bytes]:
        path = path.split("?")[0]
        if path == "/healthz":
            code, body = self.health()
            return code, "application/json", json.dumps(body, default=str).encode()
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.metrics.render()
        if path == "/":
            page = self.report().replace("<h1>canary report</h1>", "<h1>canary report</h1>" + LINKS, 1) \
                if self.report else INDEX.decode()
            return 200, "text/html; charset=utf-8", page.encode()
        return 404, "text/plain", b"not found\n"


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_GET(self) -> None:
        try:
            code, ctype, body = self.server.app.respond(self.path)
        except Exception:
            log.exception("HTTP %s failed", self.path)
            code, ctype, body = 500, "text/plain", b"internal error\n"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
