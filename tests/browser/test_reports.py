"""A report in Chromium: an analyst drafts it from a case in reporting, the gate refuses the
incomplete draft with its faults beside their fields, the completed draft passes and goes for
approval; a lead downloads and approves it with a fresh second factor; the analyst records the
submission. axe-core checks the report pages on the way. Generation runs in Celery in-process
(as under ``make demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accounts.models import TOTPDevice
from caspix.celery import app
from reporting import drafting, reports
from reporting.models import Report
from tests.browser.test_workspace import serious_violations, shoot, signed_in
from tests.reporting import reporting_world as rw

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_analyst_drafts_a_report_and_a_lead_approves_it(
    browser: Any, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    setup = rw.build()
    bob_device = TOTPDevice.objects.create(user=setup.analyst, name="Phone", confirmed=True)
    charlie_device = TOTPDevice.objects.create(user=setup.lead, name="Phone", confirmed=True)
    signed_in(page, setup.analyst, bob_device, f"/work/cases/{setup.case.pk}/")

    page.get_by_role("link", name="Draft a report to the FIU").click()
    page.wait_for_url("**/reports/new/**")
    page.get_by_role("button", name="Start the draft").click()
    page.wait_for_url("**/reports/*/")
    report = Report.objects.get(case=setup.case)
    assert page.get_by_label("Last name").first.input_value() == "Hassan"  # prefilled from the case
    assert serious_violations(page) == []

    # generated as it is: refused, every fault beside its field
    page.get_by_role("button", name="Save and generate the file").click()
    page.locator("#faults").wait_for()
    assert "Reason for suspicion" in page.locator("#faults").inner_text()
    page.locator("#faults a", has_text="Reason for suspicion").first.click()
    assert page.evaluate("location.hash") == "#id_report-reason"
    assert "A STR states it." in page.locator("#section-report").inner_text()
    assert serious_violations(page) == []
    shoot(page, "report-refused")

    # the analyst completes it (the rest as an analyst would type it), narratives on the page
    report.refresh_from_db()
    content = rw.complete(drafting.loads(report), rw.schema_of(setup))
    content.update(reason="", action="")
    reports.save(report, content, revision=report.revision, acting_user=setup.analyst)
    page.reload()
    page.get_by_label("Reason for suspicion").fill("Structured deposits & transfers just below the <threshold>.")
    page.get_by_label("Action taken").fill("Account placed under enhanced monitoring.")
    page.get_by_role("button", name="Save the draft").click()
    page.wait_for_url(f"**/reports/{report.pk}/")
    assert "The draft is saved" in page.locator(".messages").inner_text()
    page.get_by_role("button", name="Save and generate the file").click()
    page.get_by_role("button", name="Send for approval").wait_for()
    assert "Valid" in page.locator("#progress").inner_text()
    page.get_by_role("button", name="Send for approval").click()
    page.wait_for_url(f"**/reports/{report.pk}/")
    assert "waits for a lead's approval" in page.locator(".messages").inner_text()

    # the lead, in a session of their own
    lead_context = browser.new_context(base_url=page.url.split("/reports/")[0])
    try:
        lead = lead_context.new_page()
        signed_in(lead, setup.lead, charlie_device, "/reports/?show=waiting")
        lead.get_by_role("link", name=report.reference).click()
        lead.wait_for_url(f"**/reports/{report.pk}/")
        assert serious_violations(lead) == []
        shoot(lead, "report-approval")
        with lead.expect_download() as download:
            lead.locator("#file a", has_text=".xml").first.click()
        written = Path(download.value.path()).read_bytes()
        assert b"Structured deposits &amp; transfers just below the &lt;threshold&gt;." in written
        lead.get_by_label("Approve").check()
        lead.get_by_role("button", name="Record the decision").click()
        lead.wait_for_url(f"**/reports/{report.pk}/")
        assert "approved: it may be submitted" in lead.locator(".messages").inner_text()
    finally:
        lead_context.close()

    page.reload()
    page.get_by_label("FIU reference").fill("UAEFIU-2026-000777")
    page.get_by_label("Channel").select_option("web_upload")
    page.get_by_role("button", name="Record the submission").click()
    page.wait_for_url(f"**/reports/{report.pk}/")
    assert "Submitted to the FIU" in page.locator(".lead .tag").inner_text()
    assert serious_violations(page) == []
