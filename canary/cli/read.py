"""Reading what is stored: status, history, alerts, ack and the HTML report."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .common import config_option, json_option, known_series, sim_db_option


@click.command()
@config_option
@click.option("--model", required=True)
@click.option("--suite", required=True)
@click.option("--runs", "shown", type=click.IntRange(1), default=60, show_default=True,
              help="the table shows this many of the latest runs (--json: every run)")
@click.option("--all", "every", is_flag=True, help="the table shows every run")
@json_option
@sim_db_option
def history(config_path, sim, model, suite, shown, every, as_json):
    """The pass-rate series of one model and suite, with the verdict each run was judged with."""
    from .. import render, reports
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim, reading=True)
    with ws.reader() as store:
        known_series(ws, store, [model], suite)
        data = reports.history(store, ws.config, model, suite)
    if as_json:
        render.print_json({"model": model, "suite": suite, "runs": data})
    elif not data:
        render.console.print(f"no completed runs of {model} on {suite} yet")
    else:
        rows = data if every else data[-shown:]
        title = f"{model} · {suite}" + ("" if len(rows) == len(data) else
                                        f" (the last {len(rows)} of {len(data)} runs; --all for every one)")
        render.console.print(render.history_table(title, rows))


@click.command()
@config_option
@json_option
@sim_db_option
def status(config_path, sim, as_json):
    """Per model and suite: last run, pass rate, rolling mean and band, alert state, next run."""
    from .. import render, reports
    from ..clock import utcnow
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim, reading=True)
    with ws.reader() as store:
        rows = reports.status(store, ws.config, ws.suites, utcnow())
    if as_json:
        render.print_json({"series": rows})
    else:
        render.console.print(render.status_table(rows))


@click.command("alerts")
@config_option
@json_option
@sim_db_option
@click.option("--resend", is_flag=True,
              help="send again the messages Slack refused for good (after fixing alerts.slack), then list")
def alerts_(config_path, sim, as_json, resend):
    """Alerts, newest first, and the delivery state of their messages."""
    from .. import render, reports
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim, reading=True)
    with ws.store() if resend else ws.reader() as store:  # listing alone: through the driver
        if resend:
            _resend(ws, store)
        rows = reports.alert_list(store)
    if as_json:
        render.print_json({"alerts": rows})
    else:
        render.console.print(render.alerts_table(rows))


def _resend(ws, store) -> None:
    """Make the failed messages due again and deliver what is due now, with today's alerts.slack."""
    from .. import alerts, render
    from ..clock import utcnow
    from ..runner import owner_id
    if ws.config.alerts.slack is None:
        raise UsageError("--resend: no alerts.slack in the config, so nowhere to send the messages to")
    now = utcnow()
    queued, left = alerts.requeue_failed(store, now)
    if left:
        render.errors.print(f"{left} message(s) refused for good left as they are: a later message about the same "
                            "alert already went out", highlight=False)
    if not queued:
        render.errors.print("no message to send again")
        return
    report = alerts.deliver(store, alerts.notifier_from_config(ws.config.alerts), now=now, owner=owner_id())
    render.errors.print(f"{queued} message(s) refused for good queued again: {report.sent} sent, "
                        f"{report.dropped} refused for good again, {report.failed} refused for now "
                        "(retried by the daemon)", highlight=False)


@click.command()
@config_option
@click.option("--model", required=True)
@click.option("--suite", required=True)
@sim_db_option
def ack(config_path, sim, model, suite):
    """Accept today's level: close the open alert; the baseline restarts from the last run."""
    from .. import monitor, render
    from ..clock import utcnow
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim, reading=True)
    store = ws.store()
    closed = monitor.ack(store, model, suite, utcnow())
    store.close()
    restart = ("its border inputs re-referenced from the latest answers, a new series starts (see `canary "
               f"fingerprint status --model {model}`)" if suite == "fingerprint" else "baseline restarts here")
    render.console.print(f"acknowledged {model} · {suite}: {closed} alert(s) closed, {restart}")


@click.command()
@config_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@sim_db_option
def report(config_path, sim, out: Path):
    """Write an HTML page with a chart of every series, its band and its alerts."""
    from ..report_html import render_report
    from ..clock import utcnow
    from ..workspace import open_workspace
    ws = open_workspace(config_path, sim=sim, reading=True)
    with ws.reader() as store:
        page = render_report(store, ws.config, ws.suites, utcnow())
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    click.echo(f"wrote {out}")  # not rich: for one line it would cost 10 ms of imports
