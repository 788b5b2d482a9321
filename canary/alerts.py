"""Alert lifecycle, the outbox, and delivery to Slack through slack-sdk.

An alert opens once when a series goes into breach and closes once when it recovers (or is
acked). Each of those events is queued once (unique per alert and event) in an outbox
message; `record` puts the events of one incident (one model, one run) in one message per
action, so a provider-wide outage over three suites is one message, and its recovery one.
A message waits for the earlier messages of every alert it carries: a recovery never goes
before its opening.
`deliver` sends due messages and marks each sent as soon as Slack accepts it; a refused or
failed send is retried later with backoff (Slack's `Retry-After`, in seconds or as an HTTP
date, is honoured up to the longest backoff), so a Slack outage delays a message, never
drops it, and a message Slack accepted is not sent again, across restarts and replicas.
A refusal that no retry can change (a 4xx other than 429: a webhook gone, a token revoked,
a channel not found) marks the message `failed`, logged once at ERROR and never retried,
until `canary alerts --resend` (once the config is fixed) makes it due again.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Protocol

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from .config import Alerts
from .retries import Backoff
from .schema import alerts, outbox, outbox_alerts
from .store import Store

log = logging.getLogger("canary.alerts")

OUTBOX_BACKOFF = Backoff(first=timedelta(seconds=30), most=timedelta(hours=1))  # a refused message
BACKOFF_MAX = OUTBOX_BACKOFF.most
CLAIM = timedelta(minutes=2)  # a sender's hold on a message while it sends it


# Web API errors (HTTP 200, ok: false) that a later try can get past; any other is final
RETRYABLE_API_ERRORS = {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}


class DeliveryError(Exception):
    """Slack did not take a message: `retry_after` is its Retry-After header as sent (or None),
    `permanent` says no retry can help."""

    def __init__(self, message: str, retry_after: str | None = None, permanent: bool = False):
        self.retry_after = retry_after
        self.permanent = permanent
        super().__init__(message)


def _retry_after(headers) -> str | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    return value[0] if isinstance(value, list) and value else value


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After value (seconds, or an HTTP date) as seconds from `now` (naive UTC), at most
    the longest backoff; None when absent or unusable (`inf`, negative, a date gone, garbage)."""
    if value is None:
        return None
    try:
        seconds = float(str(value).strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(str(value).strip())
        except (TypeError, ValueError, IndexError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        seconds = (when - now.replace(tzinfo=timezone.utc)).total_seconds()
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, BACKOFF_MAX.total_seconds())


class Notifier(Protocol):
    def send(self, message: dict) -> None:
        """Deliver one {"text", "blocks"} message; raise DeliveryError if it was not accepted."""


class WebhookNotifier:
    """An incoming webhook (slack_sdk.webhook.WebhookClient)."""

    def __init__(self, url: str, timeout: float = 15):
        from slack_sdk.webhook import WebhookClient
        self.client = WebhookClient(url, timeout=timeout)

    def send(self, message: dict) -> None:
        try:
            resp = self.client.send(text=message["text"], blocks=message.get("blocks"))
        except Exception as exc:  # connection refused, timeout: the SDK raises urllib's errors
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise DeliveryError(f"webhook answered HTTP {resp.status_code}: {str(resp.body)[:200]}",
                                _retry_after(resp.headers), permanent=400 <= resp.status_code < 500
                                and resp.status_code not in (408, 429))


class WebApiNotifier:
    """A bot token and a channel (slack_sdk.WebClient.chat_postMessage)."""

    def __init__(self, token: str, channel: str, base_url: str | None = None, timeout: float = 15):
        from slack_sdk import WebClient
        kwargs = {"base_url": base_url} if base_url else {}
        self.client = WebClient(token=token, timeout=timeout, **kwargs)
        self.channel = channel

    def send(self, message: dict) -> None:
        from slack_sdk.errors import SlackApiError
        try:
            self.client.chat_postMessage(channel=self.channel, text=message["text"], blocks=message.get("blocks"))
        except SlackApiError as exc:
            resp = exc.response
            error = resp.get("error") if isinstance(resp.data, dict) else None
            if resp.status_code == 200:
                permanent = error not in RETRYABLE_API_ERRORS
            else:
                permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 429)
            raise DeliveryError(f"Slack API answered HTTP {resp.status_code}: {str(error)[:200]}",
                                _retry_after(resp.headers), permanent=permanent) from None
        except Exception as exc:
            raise DeliveryError(f"Slack API unreachable: {type(exc).__name__}") from None


class UnavailableNotifier:
    """Slack is configured but cannot be used (its secret is unset): every message waits."""

    def __init__(self, reason: str):
        self.reason = reason

    def send(self, message: dict) -> None:
        raise DeliveryError(self.reason)


def notifier_from_config(cfg: Alerts, env=os.environ) -> Notifier | None:
    """The configured Slack notifier, its secret read from the environment.

    None only when no Slack is configured (alerts then go to the log); a configured Slack
    whose variable is unset keeps its messages waiting in the outbox until it is set.
    """
    slack = cfg.slack
    if slack is None:
        return None
    name = slack.webhook_url_env or slack.token_env
    secret = env.get(name)
    if not secret:
        log.warning("alerts.slack: $%s is not set; alert messages wait in the outbox until it is", name)
        return UnavailableNotifier(f"${name} is not set")
    if slack.webhook_url_env:
        return WebhookNotifier(secret)
    return WebApiNotifier(secret, slack.channel, base_url=slack.api_url)


# --- lifecycle --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """One alert event of an incident: open an alert of (model, suite, kind), or close `alert_id`."""

    model: str
    suite: str
    kind: str
    action: str  # opened | recovered
    run_id: int | None
    details: dict
    alert_id: int | None = None  # the alert a recovery closes (set for an opening once it is open)


Compose = Callable[[str, list[Change]], dict]  # (action, the changes made) -> the message


def record(store: Store, changes: list[Change], compose: Compose, *, now: datetime) -> list[Change]:
    """Open and close the alerts of one incident in one transaction, and queue one message per
    action (opened, recovered) carrying every alert that changed. An alert already open (or
    closed) is left out, so another replica doing the same never makes a second message.
    Returns the changes made, each opening with its new alert's id."""
    for _ in range(len(changes) + 1):  # a replica opening one of them meanwhile: try again, without it
        queued = []
        try:
            with store.begin() as conn:
                made = [m for c in changes if (m := _apply(conn, c, now))]
                for action in ("opened", "recovered"):
                    group = [c for c in made if c.action == action]
                    if group:
                        queued.append((action, compose(action, group)))
                        _enqueue(conn, [(c.alert_id, action) for c in group], action, queued[-1][1], now)
        except IntegrityError:  # the partial unique index: an alert of this kind was opened meanwhile
            continue
        for action, message in queued:  # the daemon's log; `canary run` prints its own lines
            log.info("alert %s: %s", action, message["text"])
        return made
    return []


def _apply(conn, c: Change, now: datetime) -> Change | None:
    if c.action == "opened":
        if conn.execute(select(alerts.c.id).where(and_(alerts.c.model == c.model, alerts.c.suite == c.suite,
                                                       alerts.c.kind == c.kind, alerts.c.state == "open"))).first():
            return None  # one of this kind is already open: no repeat
        alert_id = conn.execute(alerts.insert().values(
            model=c.model, suite=c.suite, kind=c.kind, state="open", opened_at=now, opened_run_id=c.run_id,
            details=c.details).returning(alerts.c.id)).scalar()
        return replace(c, alert_id=alert_id)
    closed = conn.execute(update(alerts).where(and_(alerts.c.id == c.alert_id, alerts.c.state == "open"))
                          .values(state="closed", closed_at=now, closed_run_id=c.run_id, closed_by="recovered"))
    return c if closed.rowcount else None


def open_alert(store: Store, *, model: str, suite: str, kind: str, run_id: int | None, details: dict,
               message: dict, now: datetime) -> int | None:
    """Open one alert and queue its message; None if one of this kind is already open (no repeat)."""
    made = record(store, [Change(model, suite, kind, "opened", run_id, details)], lambda *_: message, now=now)
    return made[0].alert_id if made else None


def close_alert(store: Store, alert_id: int, *, run_id: int | None, by: str, message: dict | None,
                now: datetime) -> bool:
    """Close an open alert (recovered, acked, given up); queue its recovery message if given."""
    with store.begin() as conn:
        closed = conn.execute(update(alerts).where(and_(alerts.c.id == alert_id, alerts.c.state == "open"))
                              .values(state="closed", closed_at=now, closed_run_id=run_id, closed_by=by)).rowcount
        if closed and message:
            _enqueue(conn, [(alert_id, "recovered")], "recovered", message, now)
    if closed and message:
        log.info("alert recovered: %s", message["text"])
    return bool(closed)


def _enqueue(conn, events: list[tuple[int, str]], action: str, message: dict, now: datetime) -> None:
    """One message in the outbox, carrying these (alert id, event) pairs."""
    message_id = conn.execute(outbox.insert().values(
        event=action, message=message, state="pending", created_at=now, attempts=0,
        next_attempt_at=now).returning(outbox.c.id)).scalar()
    conn.execute(outbox_alerts.insert(), [{"outbox_id": message_id, "alert_id": a, "event": e} for a, e in events])


# --- delivery -----------------------------------------------------------------------------------

@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # refused for now: retried later
    logged: int = 0
    dropped: int = 0  # refused for good: marked failed


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    """The wait before the next send: the outbox's backoff, or Slack's Retry-After if longer."""
    return max(OUTBOX_BACKOFF.delay(attempts), timedelta(seconds=retry_after or 0))


def deliver(store: Store, notifier: Notifier | None, *, now: datetime, owner: str, limit: int = 50) -> DeliveryReport:
    """Send every due message once. Each is claimed first, so two replicas never both send it.

    A message waits for the earlier ones of its alert; passes repeat while they make
    progress, so a recovery goes out right after the opening it follows.
    """
    report = DeliveryReport()
    for _ in range(10):
        before = report.sent + report.logged + report.dropped
        _deliver_pass(store, notifier, now=now, owner=owner, limit=limit, report=report)
        if report.sent + report.logged + report.dropped == before:
            break
    return report


def _deliver_pass(store: Store, notifier: Notifier | None, *, now: datetime, owner: str, limit: int,
                  report: DeliveryReport) -> None:
    # an alert's messages go out in order (recovered after opened): a message waits while an
    # earlier one carrying any of its alerts is pending
    mine, theirs, earlier = outbox_alerts.alias("mine"), outbox_alerts.alias("theirs"), outbox.alias("earlier")
    waiting = (select(earlier.c.id).select_from(mine.join(theirs, theirs.c.alert_id == mine.c.alert_id)
                                                .join(earlier, earlier.c.id == theirs.c.outbox_id))
               .where(and_(mine.c.outbox_id == outbox.c.id, earlier.c.id < outbox.c.id, earlier.c.state == "pending")))
    with store.begin() as conn:
        due = conn.execute(select(outbox.c.id).where(and_(
            outbox.c.state == "pending", outbox.c.next_attempt_at <= now, ~waiting.exists(),
            or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now)))
            .order_by(outbox.c.id).limit(limit)).scalars().all()
    for message_id in due:
        with store.begin() as conn:
            claimed = conn.execute(update(outbox).where(and_(
                outbox.c.id == message_id, outbox.c.state == "pending",
                or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now)))
                .values(claimed_by=owner, claimed_until=now + CLAIM)).rowcount
            row = conn.execute(select(outbox).where(outbox.c.id == message_id)).one() if claimed else None
        if row is None:
            continue
        if notifier is None:  # no Slack configured: the log line was the delivery
            _settle(store, message_id, state="logged", now=now)
            report.logged += 1
            continue
        try:
            notifier.send(row.message)
        except DeliveryError as exc:
            attempts = row.attempts + 1
            values = {"attempts": attempts, "last_error": str(exc)[:500], "claimed_by": None, "claimed_until": None}
            if exc.permanent:
                values["state"] = "failed"
            else:
                values["next_attempt_at"] = now + backoff(attempts, retry_after_seconds(exc.retry_after, now))
            with store.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.id == message_id).values(**values))
            if exc.permanent:
                log.error("Slack refused alert message %s for good: %s; it is marked failed and not retried "
                          "(fix alerts.slack; `canary alerts` lists it)", message_id, exc)
                report.dropped += 1
            else:
                log.warning("Slack refused alert message %s (attempt %s): %s; will retry", message_id, attempts, exc)
                report.failed += 1
            continue
        _settle(store, message_id, state="sent", now=now, attempts=row.attempts + 1)
        report.sent += 1


def requeue_failed(store: Store, now: datetime) -> tuple[int, int]:
    """Messages refused for good, due again now (after alerts.slack was fixed): `canary alerts
    --resend`. Returns (queued again, left failed). A message stays failed when one of its
    alerts has since been reported by a later message that went out (an opening refused, then
    its recovery sent): sending it now would tell the story out of order."""
    mine, theirs, later = outbox_alerts.alias("mine"), outbox_alerts.alias("theirs"), outbox.alias("later")
    overtaken = (select(later.c.id).select_from(mine.join(theirs, theirs.c.alert_id == mine.c.alert_id)
                                                .join(later, later.c.id == theirs.c.outbox_id))
                 .where(and_(mine.c.outbox_id == outbox.c.id, later.c.id > outbox.c.id,
                             later.c.state.in_(["sent", "logged"]))))
    with store.begin() as conn:
        failed = conn.execute(select(func.count()).select_from(outbox).where(outbox.c.state == "failed")).scalar()
        queued = conn.execute(update(outbox).where(and_(outbox.c.state == "failed", ~overtaken.exists())).values(
            state="pending", next_attempt_at=now, claimed_by=None, claimed_until=None)).rowcount
    return queued, failed - queued


def _settle(store: Store, message_id: int, *, state: str, now: datetime, attempts: int | None = None) -> None:
    values = {"state": state, "sent_at": now, "claimed_by": None, "claimed_until": None, "last_error": None}
    if attempts is not None:
        values["attempts"] = attempts
    with store.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.id == message_id).values(**values))
