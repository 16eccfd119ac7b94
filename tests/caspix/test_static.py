"""Every asset is served by the app, pinned, and no page names an external URL."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import User
from tests.conftest import client_for

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL = re.compile(r"""(?:src|href|action|content)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
CSS_EXTERNAL = re.compile(r"""(?:url\(\s*["']?\s*(?:https?:)?//|@import)""", re.IGNORECASE)


def test_it_vendors_htmx_at_the_pinned_version() -> None:
    manifest = json.loads((ROOT / "static/vendor/VENDORED.json").read_text(encoding="utf-8"))
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]["htmx.org"]
    assert manifest["htmx.org"]["version"] == pinned
    for name, digest in manifest["htmx.org"]["files"].items():
        content = (ROOT / "static/vendor" / name).read_bytes()
        assert f"sha256:{hashlib.sha256(content).hexdigest()}" == digest
    assert f'version:"{pinned}"' in (ROOT / "static/vendor/htmx/htmx.min.js").read_text(encoding="utf-8")


@pytest.mark.parametrize("template", sorted(p.relative_to(ROOT) for p in (ROOT / "templates").rglob("*.html")))
def test_it_names_no_external_url_in_templates(template: Path) -> None:
    assert not EXTERNAL.search((ROOT / template).read_text(encoding="utf-8"))


def test_it_loads_no_external_css() -> None:
    for css in (ROOT / "static").rglob("*.css"):
        assert not CSS_EXTERNAL.search(css.read_text(encoding="utf-8")), css


@pytest.mark.parametrize("persona", ["admin", "analyst", "manager", "auditor"])
def test_it_renders_pages_without_external_urls(request: pytest.FixtureRequest, persona: str) -> None:
    user: User = request.getfixturevalue(persona)
    client = client_for(user)
    page = client.get("/", follow=True)
    assert page.status_code == 200
    assert not EXTERNAL.search(page.content.decode())


def test_it_serves_the_static_files_itself(db: None) -> None:
    response = Client().get("/static/vendor/htmx/htmx.min.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    css = Client().get("/static/caspix/app.css")
    assert css.status_code == 200
