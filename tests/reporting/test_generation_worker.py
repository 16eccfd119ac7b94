"""A report's file is written and checked by a real Celery worker (Redis broker, PostgreSQL), and
the page follows its progress until the gate's verdict."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from reporting import reports, tasks
from reporting.models import ReportFile
from tests.caspix.test_celery_worker import wait_until, worker_queue  # noqa: F401 (a fixture)
from tests.conftest import client_for
from tests.recorded import sequenced_and_pending
from tests.reporting import reporting_world as rw

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_worker_generates_the_file_queued_on_commit(worker_queue: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    # The task goes to this test's own queue (parallel runs never share deliveries).
    monkeypatch.setattr(
        tasks.generate_report,
        "delay",
        lambda file_id: tasks.generate_report.apply_async(args=(file_id,), queue=worker_queue),
    )
    setup = rw.build()
    report = rw.drafted(setup)
    made = reports.request_generation(report, revision=report.revision, acting_user=setup.analyst)
    assert wait_until(lambda: ReportFile.objects.get(pk=made.pk).finished, 90)
    made.refresh_from_db()
    assert made.status == ReportFile.Status.VALID, made.faults
    assert made.done == made.total == 4
    assert made.sha256
    generated: list[Any] = [e for e in sequenced_and_pending() if e["name"] == "REPORT_GENERATED"]
    assert generated
    assert generated[-1]["actor"]["name"] == "report generation"
    page = client_for(setup.analyst).get(reverse("reports:progress", args=[report.pk])).content.decode()
    assert "Valid" in page
    assert made.sha256 in page
