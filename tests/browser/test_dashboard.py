"""The managers' dashboard in Chromium: a manager signs in with a second factor and every chart
is drawn on its canvas under the strict CSP (no console error, no violation, no style element
injected), beside its table; the team filter, a refused period and a CSV download work from
the page. axe-core checks the page as drawn and as refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import TOTPDevice
from tests.browser.test_workspace import serious_violations, shoot, signed_in
from tests.reporting import reporting_world as rw
from tests.reporting.test_dashboard import DAY, HOUR, closed, place

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every CSP violation the page meets, collected before any of its scripts runs (an init script
# comes through the DevTools protocol, which the page's policy does not govern).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
# Each chart's canvas: its id, its size, and how many of its pixels were painted.
PAINTED = """() => [...document.querySelectorAll("canvas[data-chart]")].map((canvas) => {
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let alpha = 3; alpha < pixels.length; alpha += 4) { if (pixels[alpha]) painted++; }
  return [canvas.dataset.chart, canvas.width, canvas.height, painted, Boolean(window.Chart.getChart(canvas))];
})"""


def test_a_manager_sees_every_chart_drawn_under_the_csp(page: Any, tmp_path: Path) -> None:
    setup = rw.build()
    rw.drafted(setup)
    users, queues = setup.world.users, setup.world.queues
    place(queues["cards"], opened=2 * HOUR, sla_due_at=timezone.now() + 2 * HOUR)
    place(queues["aml"], opened=10 * DAY, sla_due_at=timezone.now() - DAY)
    closed(queues["cards"], DAY, "false_positive", users["analyst"])
    closed(queues["aml"], 9 * DAY, "referred", users["other_analyst"])
    manager = users["manager"]
    device = TOTPDevice.objects.create(user=manager, name="Phone", confirmed=True)
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.add_init_script(WATCH_CSP)

    signed_in(page, manager, device, "/dashboard/")
    page.wait_for_function("document.querySelectorAll('canvas[data-chart]').length === 10")
    charts = page.evaluate(PAINTED)
    assert len(charts) == 10
    for name, width, height, painted, chart in charts:
        assert chart, f"{name}: no chart on the canvas"
        assert width > 0 and height > 0, f"{name}: an empty canvas"  # noqa: PT018 (one message for both)
        assert painted > 0, f"{name}: nothing drawn"
    assert page.evaluate("document.querySelectorAll('style').length") == 0  # Chart.js injected no style element
    assert page.evaluate("window.__cspViolations") == []
    assert [line for line in console if line.startswith(("error", "pageerror"))] == []
    assert page.get_by_role("table", name="SLA of the open cases by team").is_visible()
    assert serious_violations(page) == []
    shoot(page, "dashboard")

    # one team
    page.get_by_role("combobox", name="Team").select_option("cards")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**team=cards**")
    page.wait_for_function("document.querySelectorAll('canvas[data-chart]').length === 10")
    teams = page.get_by_role("table", name="Open cases by team", exact=True).inner_text()
    assert teams.count("Card fraud") == 1
    assert "Anti-money laundering" not in teams

    # a table as CSV, with the filters shown
    with page.expect_download() as download:
        page.get_by_role("link", name="Download “Closure reasons” as CSV").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("caspix-closure-reasons-")
    assert saved.read_text(encoding="utf-8").splitlines()[1] == "False positive,1"

    # a period that ends before it starts: refused, saying why, the form kept
    today = timezone.localdate()
    page.locator("#id_start").fill(today.isoformat())
    page.locator("#id_end").fill((today - 7 * DAY).isoformat())
    page.get_by_role("button", name="Show").click()
    page.get_by_role("alert").wait_for()
    assert "The first day comes before the last day." in page.get_by_role("alert").inner_text()
    assert page.locator("canvas").count() == 0
    assert serious_violations(page) == []
    assert page.evaluate("window.__cspViolations") == []
    # the browser reports the refusal's status (400) itself; nothing else went wrong
    assert [line for line in console if line.startswith(("error", "pageerror")) and "status of 400" not in line] == []
