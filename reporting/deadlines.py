"""When a report is due: business days after suspicion was formed, in the FIU's calendar.

A profile says how many business days its FIU allows (``report_due_days``), which days of the week
are its weekend (Saturday and Sunday by default; Friday and Saturday in some jurisdictions), and
its holidays (administered with the profile). The day suspicion was formed does not count; the
deadline is the last business day of the allowance.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Collection
from enum import StrEnum

from django.utils import timezone

from reporting.models import FiuProfile, Holiday


class Standing(StrEnum):
    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


def add_business_days(
    start: datetime.date, days: int, weekend: Collection[int], holidays: Collection[datetime.date]
) -> datetime.date:
    """The ``days``-th business day after ``start`` (``start`` itself not counted)."""
    if len(set(weekend)) >= 7:
        raise ValueError("a calendar with no working day has no deadline")
    day, counted = start, 0
    while counted < days:
        day += datetime.timedelta(days=1)
        if day.weekday() not in weekend and day not in holidays:
            counted += 1
    return day


def business_days_between(
    start: datetime.date, end: datetime.date, weekend: Collection[int], holidays: Collection[datetime.date]
) -> int:
    """Business days after ``start`` up to and including ``end`` (negative when ``end`` is before)."""
    sign, low, high = (1, start, end) if end >= start else (-1, end, start)
    count, day = 0, low
    while day < high:
        day += datetime.timedelta(days=1)
        if day.weekday() not in weekend and day not in holidays:
            count += 1
    return sign * count


def _calendar(profile: FiuProfile, start: datetime.date) -> tuple[tuple[int, ...], set[datetime.date]]:
    weekend = tuple(profile.weekend)
    # A deadline is at most a few months away: the holidays of a generous window are enough.
    holidays = set(
        Holiday.objects.filter(
            profile=profile,
            day__gte=start - datetime.timedelta(days=400),
            day__lte=start + datetime.timedelta(days=800),
        ).values_list("day", flat=True)
    )
    return weekend, holidays


def today(profile: FiuProfile) -> datetime.date:
    """Today on the FIU's wall clock: its deadlines and dates are its own."""
    return timezone.now().astimezone(zoneinfo.ZoneInfo(profile.time_zone)).date()


def due_on(profile: FiuProfile, suspicion_on: datetime.date) -> datetime.date:
    weekend, holidays = _calendar(profile, suspicion_on)
    return add_business_days(suspicion_on, profile.report_due_days, weekend, holidays)


Calendars = dict[int, tuple[tuple[int, ...], set[datetime.date]]]


def standing(
    profile: FiuProfile, due: datetime.date, today: datetime.date, calendars: Calendars | None = None
) -> tuple[Standing, int]:
    """Whether a report due on ``due`` is on time, due soon (within the profile's warning days)
    or overdue on ``today``, and how many business days are left (negative: late by).
    ``calendars`` keeps each profile's calendar for a list of reports (one query a profile)."""
    if calendars is None:
        calendars = {}
    if profile.pk not in calendars:
        calendars[profile.pk] = _calendar(profile, today)
    weekend, holidays = calendars[profile.pk]
    left = business_days_between(today, due, weekend, holidays)
    if due < today:
        return Standing.OVERDUE, left
    return (Standing.DUE_SOON if left <= profile.warn_days else Standing.ON_TIME), left
