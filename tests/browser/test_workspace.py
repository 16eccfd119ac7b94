"""The analysts' workspace in Chromium: an analyst signs in with a second factor, takes the next
case, adds a note and evidence and proposes closing it as confirmed fraud; a lead approves; the
timeline shows every step. axe-core checks the queue, case and search pages on the way.

``CASPIX_SCREENSHOTS=<directory>`` (``make screenshots``) saves the queue and case pages there.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import Membership, Team, TOTPDevice, User
from cases.models import Case, Queue
from tests.browser.test_login import code_for, sign_in
from tests.cases.test_workflow import with_transactions
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = os.environ.get("CASPIX_SCREENSHOTS", "")


def serious_violations(page: Any) -> list[str]:
    """What axe-core finds serious or critical on the page as it stands (WCAG 2.x A and AA).

    axe runs through the DevTools protocol, which the page's Content-Security-Policy does not
    govern: the page itself still loads no script but its own."""
    if not AXE.exists():
        pytest.fail("axe-core is not installed: run npm ci at the project root (make test does)")
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    return list(
        page.evaluate(
            """async () => {
                const result = await axe.run(document, {
                    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
                    resultTypes: ["violations"],
                });
                return result.violations
                    .filter(v => v.impact === "serious" || v.impact === "critical")
                    .map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target.join(" ")).join(", ")}`);
            }"""
        )
    )


def shoot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def signed_in(page: Any, user: User, device: TOTPDevice, start: str = "/work/") -> None:
    page.goto(start)
    sign_in(page, user.username)
    page.wait_for_url("**/login/verify/**")
    page.get_by_role("textbox", name="Code").fill(code_for(device.bin_key))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"**{start}")


def world() -> tuple[User, TOTPDevice, User, TOTPDevice, Case]:
    bob = make_user(username="bob", roles=["analyst"], first_name="Bob", last_name="Analyst")
    charlie = make_user(username="charlie", roles=["lead"], first_name="Charlie", last_name="Lead")
    team = Team.objects.create(slug="cards", name="Card fraud")
    for user in (bob, charlie):
        Membership.objects.create(team=team, user=user)
    queue = Queue.objects.create(slug="cards", name="Card fraud queue", team=team)
    now = timezone.now()
    urgent = Case.objects.create(
        title="Card testing on a debit card",
        queue=queue,
        priority=Case.Priority.HIGH,
        sla_due_at=now + datetime.timedelta(hours=3),
    )
    with_transactions(urgent, ("49.99", "EUR"), ("1.00", "EUR"))
    for n, hours in enumerate((30, 70, -2)):
        Case.objects.create(
            title=f"Unusual transfer {n + 1}", queue=queue, sla_due_at=now + datetime.timedelta(hours=hours)
        )
    Case.objects.filter(title="Unusual transfer 3").update(status=Case.Status.IN_PROGRESS, assignee=charlie)
    devices = [TOTPDevice.objects.create(user=user, name="Phone", confirmed=True) for user in (bob, charlie)]
    return bob, devices[0], charlie, devices[1], urgent


def test_an_analyst_proposes_a_closure_a_lead_approves_and_the_timeline_tells_it(browser: Any, page: Any) -> None:
    bob, bob_device, charlie, charlie_device, urgent = world()
    signed_in(page, bob, bob_device)

    # the queue: most urgent first, with its SLA, accessible, keyboard-driven
    rows = page.locator("tr[data-case-row]")
    assert rows.count() == 4
    assert "overdue" in rows.nth(0).inner_text()  # the overdue case first
    assert serious_violations(page) == []
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.textContent") == urgent.reference
    page.keyboard.press("?")
    assert page.locator("#keyboard-help").is_visible()
    page.keyboard.press("Escape")
    shoot(page, "queue")

    # take the next case: the most urgent one no one holds
    page.get_by_role("button", name="Take the next case").click()
    page.wait_for_url(f"**/work/cases/{urgent.pk}/")
    assert f"{urgent.reference} is yours" in page.locator(".messages").inner_text()
    assert serious_violations(page) == []

    # a note, then evidence
    page.locator("#notes").get_by_label("Note").fill("Two card-testing attempts, then a 49.99 purchase abroad.")
    page.get_by_role("button", name="Add the note").click()  # htmx: the notes and the timeline, in place
    page.locator("#notes pre.note").first.wait_for()
    assert "49.99 purchase abroad" in page.locator("#notes").inner_text()
    assert page.url.endswith(f"/work/cases/{urgent.pk}/")
    assert page.locator(".timeline .what").first.inner_text() == "Note added"
    assert "The note is added." in page.locator("#messages").inner_text()
    page.get_by_role("button", name="Add the note").click()  # empty: the error shows where the form is
    page.locator("#notes .errorlist").wait_for()
    assert page.locator("#notes pre.note").count() == 1
    extract = b"date,amount\n2026-11-24,49.99\n"
    page.get_by_label("File").set_input_files({"name": "extract.csv", "mimeType": "text/csv", "buffer": extract})
    page.get_by_role("button", name="Attach the file").click()
    page.wait_for_url(f"**/work/cases/{urgent.pk}/#evidence")
    assert hashlib.sha256(extract).hexdigest() in page.locator("#evidence").inner_text()

    # propose the closure as confirmed fraud: four-eyes
    page.locator("#close summary").click()
    page.get_by_label("Closure reason").select_option("confirmed_fraud")
    page.get_by_label("Closing note").fill("Confirmed by the cardholder: the card was stolen.")
    page.get_by_role("button", name="Close the case").click()
    page.wait_for_url(f"**/work/cases/{urgent.pk}/")
    assert "pending approval" in page.locator(".messages").inner_text()
    assert page.locator("#pending-approval").is_visible()
    shoot(page, "case")
    assert serious_violations(page) == []

    # search, accessible too
    page.goto(f"/work/search/?kind=case&q={urgent.reference}")
    assert page.locator("tr[data-case-row]").count() == 1
    assert serious_violations(page) == []

    # the lead approves, in a session of their own
    lead_context = browser.new_context(base_url=page.url.split("/work/")[0])
    try:
        lead = lead_context.new_page()
        signed_in(lead, charlie, charlie_device, "/work/approvals/")
        lead.get_by_role("link", name="#", exact=False).first.click()
        assert "Confirmed by the cardholder" in lead.locator("main").inner_text()
        assert serious_violations(lead) == []
        lead.get_by_label("Approve").check()
        lead.get_by_role("button", name="Record the decision").click()
        lead.wait_for_url("**/work/approvals/")
        assert "is approved" in lead.locator(".messages").inner_text()
    finally:
        lead_context.close()

    # the timeline, from the ledger, tells every step
    page.goto(f"/work/cases/{urgent.pk}/")
    assert page.locator(".lead .tag").inner_text() == "Closed"
    steps = page.locator(".timeline .what").all_inner_texts()
    assert steps == ["Closed", "Closure proposed", "Note added", "Evidence added", "Note added", "Assigned"]
    closed = page.locator(".timeline li").first.inner_text()
    assert "as confirmed fraud, approved on request" in closed
    assert "(lead)" in closed  # the approver, as the ledger copied their role
