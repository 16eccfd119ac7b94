"""Report deadlines: business days after suspicion was formed, in the FIU's own calendar (its
weekend and holidays), re-dated when the calendar changes, and escalated once when close."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from cases.models import Case
from reporting import actions, deadlines, reports
from reporting.models import Report
from tests.conftest import client_for
from tests.recorded import events
from tests.reporting import reporting_world as rw

MONDAY = datetime.date(2026, 11, 2)
SAT_SUN = (5, 6)
FRI_SAT = (4, 5)


def test_business_days_skip_the_weekend_and_holidays() -> None:
    assert deadlines.add_business_days(MONDAY, 5, SAT_SUN, set()) == datetime.date(2026, 11, 9)
    assert deadlines.add_business_days(MONDAY, 4, SAT_SUN, set()) == datetime.date(2026, 11, 6)
    assert deadlines.add_business_days(MONDAY, 4, FRI_SAT, set()) == datetime.date(2026, 11, 8)  # a Sunday
    holiday = {datetime.date(2026, 11, 4)}
    assert deadlines.add_business_days(MONDAY, 5, SAT_SUN, holiday) == datetime.date(2026, 11, 10)
    friday = datetime.date(2026, 11, 6)
    assert deadlines.add_business_days(friday, 1, SAT_SUN, set()) == datetime.date(2026, 11, 9)
    assert deadlines.add_business_days(MONDAY, 0, SAT_SUN, set()) == MONDAY
    with pytest.raises(ValueError, match="no working day"):
        deadlines.add_business_days(MONDAY, 1, range(7), set())


def test_business_days_between_count_both_ways() -> None:
    assert deadlines.business_days_between(MONDAY, datetime.date(2026, 11, 9), SAT_SUN, set()) == 5
    assert deadlines.business_days_between(datetime.date(2026, 11, 9), MONDAY, SAT_SUN, set()) == -5
    assert deadlines.business_days_between(MONDAY, MONDAY, SAT_SUN, set()) == 0


@pytest.mark.django_db
def test_a_holiday_re_dates_the_open_reports_and_is_recorded() -> None:
    setup = rw.build()
    admin = setup.world.users["admin"]
    report = rw.drafted(setup)
    before = report.due_on
    actions.add_holiday(setup.profile, day=before, name="National Day", acting_user=admin)
    report.refresh_from_db()
    assert report.due_on > before
    changed = [e for e in events() if e["name"] == "FIU_CALENDAR_CHANGED"]
    assert changed[-1]["after"] == {"day": before.isoformat(), "name": "National Day", "reports_redated": 1}
    with pytest.raises(ValidationError, match="already"):
        actions.add_holiday(setup.profile, day=before, name="Again", acting_user=admin)
    actions.remove_holiday(setup.profile, day=before, acting_user=admin)
    report.refresh_from_db()
    assert report.due_on == before


@pytest.mark.django_db
def test_the_rules_are_checked_and_re_date_reports() -> None:
    setup = rw.build()
    admin = setup.world.users["admin"]
    report = rw.drafted(setup)
    rules = {
        "report_due_days": 30,
        "warn_days": 3,
        "weekend": [4, 5],
        "time_zone": "Asia/Dubai",
        "reporting_user_code": "",
    }
    actions.set_rules(setup.profile, **rules, acting_user=admin)  # type: ignore[arg-type]
    report.refresh_from_db()
    weekend = (4, 5)
    assert report.due_on == deadlines.add_business_days(report.suspicion_on, 30, weekend, set())
    for wrong, message in (
        ({"warn_days": 30}, "before the deadline"),
        ({"time_zone": "Mars/Olympus"}, "not a time zone"),
        ({"weekend": [1, 2, 3, 4]}, "up to three"),
        ({"report_due_days": 0}, "between 1 and 365"),
    ):
        with pytest.raises(ValidationError, match=message):
            actions.set_rules(setup.profile, **{**rules, **wrong}, acting_user=admin)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_the_calendar_is_kept_from_the_profile_page_with_a_fresh_second_factor() -> None:
    setup = rw.build()
    alice = client_for(setup.world.users["admin"])
    url = reverse("fiu_profiles:holiday", args=[setup.profile.slug])
    response = alice.post(url, {"day": "2026-12-02", "name": "National Day"})
    assert response.status_code == 302
    page = alice.get(reverse("fiu_profiles:detail", args=[setup.profile.slug])).content.decode()
    assert "National Day" in page
    assert "2026-12-02" in page
    assert alice.post(url, {"day": "2026-12-02", "remove": "True"}).status_code == 302
    assert alice.post(url, {"day": "", "name": ""}).status_code == 400
    rules = reverse("fiu_profiles:rules", args=[setup.profile.slug])
    bad = alice.post(
        rules, {"report_due_days": "10", "warn_days": "2", "weekend": ["5", "6"], "time_zone": "Nowhere/Else"}
    )
    assert bad.status_code == 400
    assert "not a time zone" in bad.content.decode()
    assert client_for(setup.analyst).post(url, {"day": "2026-12-02", "name": "x"}).status_code == 403


@pytest.mark.django_db
def test_a_report_close_to_its_deadline_raises_its_case_once() -> None:
    setup = rw.build()
    report = rw.drafted(setup)
    Case.objects.filter(pk=setup.case.pk).update(priority=Case.Priority.MEDIUM)
    today = timezone.localdate()
    assert reports.escalate_deadlines(today) == 0  # ten business days ahead: on time
    Report.objects.filter(pk=report.pk).update(due_on=today + datetime.timedelta(days=1))
    assert reports.escalate_deadlines(today) == 1
    setup.case.refresh_from_db()
    assert setup.case.priority == Case.Priority.CRITICAL
    found: list[Any] = [e for e in events() if e["name"] == "REPORT_DEADLINE_NEAR"]
    [near] = found
    assert near["reason"] == "due_soon"
    assert near["after"]["priority"] == {"before": 2, "after": 4}
    assert reports.escalate_deadlines(today) == 0  # once


@pytest.mark.django_db
def test_an_overdue_report_is_escalated_and_a_submitted_one_is_not() -> None:
    setup = rw.build()
    report = rw.drafted(setup)
    today = timezone.localdate()
    Report.objects.filter(pk=report.pk).update(
        due_on=today - datetime.timedelta(days=3), status=Report.Status.SUBMITTED
    )
    assert reports.escalate_deadlines(today) == 0
    Report.objects.filter(pk=report.pk).update(status=Report.Status.APPROVED)
    assert reports.escalate_deadlines(today) == 1
    assert [e["reason"] for e in events() if e["name"] == "REPORT_DEADLINE_NEAR"] == ["overdue"]


@pytest.mark.django_db
def test_a_calendar_with_no_weekend_shows_no_day_ticked() -> None:
    setup = rw.build()
    admin = setup.world.users["admin"]
    rules = {"report_due_days": 5, "warn_days": 1, "weekend": [], "time_zone": "UTC", "reporting_user_code": ""}
    actions.set_rules(setup.profile, **rules, acting_user=admin)  # type: ignore[arg-type]
    page = client_for(admin).get(reverse("fiu_profiles:detail", args=[setup.profile.slug])).content.decode()
    assert 'name="weekend" value="5" id="id_weekend_5"' in page
    assert 'value="5" id="id_weekend_5" checked' not in page
