"""The access review in Chromium: a manager takes a snapshot, reads it, signs it off with a fresh
second factor and downloads its PDF. axe-core checks the list and the snapshot's page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accounts.models import TOTPDevice
from reporting.models import AccessReview
from tests.browser.test_workspace import serious_violations, shoot, signed_in
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_takes_reads_and_signs_off_a_snapshot(page: Any) -> None:
    dana = make_user(username="dana", roles=["manager"])
    make_user(username="Дмитрий", roles=["analyst"])
    device = TOTPDevice.objects.create(user=dana, name="Phone", confirmed=True)
    signed_in(page, dana, device, "/oversight/access-review/")
    assert "No snapshot was taken yet." in page.locator("main").inner_text()
    assert serious_violations(page) == []

    page.get_by_role("button", name="Take a snapshot now").click()
    page.wait_for_url("**/oversight/access-review/*/")
    review = AccessReview.objects.get()
    assert review.sha256 in page.locator("#snapshot-sha256").inner_text()
    assert "Дмитрий" in page.locator("main").inner_text()
    assert serious_violations(page) == []
    shoot(page, "access-review")

    page.get_by_label("Comment").fill("Reviewed with the heads of team.")
    page.get_by_role("button", name="Sign off this snapshot").click()
    page.wait_for_url(f"**/oversight/access-review/{review.pk}/")
    assert "The snapshot is signed off" in page.locator(".messages").inner_text()
    assert "Reviewed with the heads of team." in page.locator("main").inner_text()
    assert serious_violations(page) == []

    with page.expect_download() as download:
        page.get_by_role("link", name="PDF").click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF-")
    review.refresh_from_db()
    assert review.signed_off_by == dana
