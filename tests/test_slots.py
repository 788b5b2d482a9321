"""Slot arithmetic: the latest fire, and the hour repeated when clocks go back."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from canary.config import cron_trigger
from canary.slots import latest_fire, repeated_wall_time


def test_the_repeated_autumn_hour_runs_a_slot_once():
    trigger = cron_trigger("30 2 * * *", ZoneInfo("Europe/Paris"))  # clocks go back on 25 Oct 2026 at 03:00
    earliest = datetime(2026, 10, 24)
    first = latest_fire(trigger, datetime(2026, 10, 25, 0, 45), earliest)   # 02:30 CEST = 00:30 UTC
    second = latest_fire(trigger, datetime(2026, 10, 25, 1, 45), earliest)  # 02:30 CET = 01:30 UTC
    assert (first, second) == (datetime(2026, 10, 25, 0, 30), datetime(2026, 10, 25, 1, 30))
    assert not repeated_wall_time(trigger, first) and repeated_wall_time(trigger, second)
    assert not repeated_wall_time(trigger, datetime(2026, 10, 26, 1, 30))  # the next day: an ordinary slot


def test_latest_fire_in_a_window():
    trigger = cron_trigger("0 6 * * 1", ZoneInfo("UTC"))  # Mondays 06:00 (crontab: 1 = Monday)
    assert latest_fire(trigger, datetime(2026, 11, 25, 12), datetime(2026, 11, 20)) == datetime(2026, 11, 23, 6)
    assert latest_fire(trigger, datetime(2026, 11, 25, 12), datetime(2026, 11, 24)) is None


def test_crontab_weekdays_mean_what_cron_means():
    from canary.config import _weekdays
    assert _weekdays("1") == "mon" and _weekdays("0") == _weekdays("7") == "sun"
    assert _weekdays("1-5") == "mon,tue,wed,thu,fri" and _weekdays("0,6") == "sun,sat"
    assert _weekdays("*/2") == "sun,tue,thu,sat"  # cron steps from Sunday; APScheduler would from Monday
    assert _weekdays("0-6") == "sun,mon,tue,wed,thu,fri,sat" and _weekdays("5-0") == "sun,fri,sat"
    assert _weekdays("mon-fri") == "mon,tue,wed,thu,fri" and _weekdays("*") == "*"
