"""Evidence packs in Chromium: an auditor asks for a case's pack with a fresh second factor,
watches it build, downloads it, and the offline verifier finds it intact. axe-core checks the
exports pages and the integrity status page."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from accounts.models import TOTPDevice
from audit.ledger import integrate_all
from cases import casework
from caspix_verify import verify_pack
from reporting import exports
from reporting.models import Export
from tests.browser.test_workspace import serious_violations, shoot, signed_in
from tests.reporting import reporting_world as rw
from tests.reporting.test_exports import PDF, public_keys

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_asks_for_a_pack_downloads_it_and_it_verifies(page: Any) -> None:
    setup = rw.build()
    casework.add_evidence(setup.case, "statement.pdf", PDF, acting_user=setup.analyst)
    integrate_all()
    erin = setup.world.users["auditor"]
    device = TOTPDevice.objects.create(user=erin, name="Phone", confirmed=True)
    signed_in(page, erin, device, "/exports/")
    assert "You have not exported anything yet." in page.locator("main").inner_text()
    assert serious_violations(page) == []

    page.get_by_label("What to export").select_option("case_pack")
    page.get_by_label("Case").fill("C-999999")
    page.get_by_role("button", name="Build it").click()
    assert "There is no case of that reference." in page.locator("main").inner_text()
    assert serious_violations(page) == []

    page.get_by_label("Case").fill(setup.case.reference)
    page.get_by_role("button", name="Build it").click()
    page.wait_for_url("**/exports/*/")
    export = Export.objects.get()
    assert "Waiting for a worker" in page.locator("#progress").inner_text()
    exports.build_export(str(export.pk))  # the worker's part; the page polls until it is done
    page.locator("#progress").get_by_text("Ready").wait_for(timeout=10_000)
    export.refresh_from_db()
    assert export.sha256 in page.locator("#progress").inner_text()
    assert serious_violations(page) == []
    shoot(page, "export")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the pack").click()
    data = Path(download.value.path()).read_bytes()
    result = verify_pack(io.BytesIO(data), public_keys())
    assert result.intact, result.problems

    page.goto("/audit/")
    assert "Ledger integrity" in page.locator("main").inner_text()
    assert serious_violations(page) == []
