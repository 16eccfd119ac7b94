"""Every page carries the browser-hardening headers (ASVS 3.4)."""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings

from accounts.models import User


@pytest.fixture
def page(db: None) -> object:
    return Client().get("/login/")


def test_it_sends_a_strict_content_security_policy_with_a_nonce(page: object) -> None:
    csp = page["Content-Security-Policy"]  # type: ignore[index]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if " " in d.strip())
    assert directives["default-src"] == "'none'"
    assert re.fullmatch(r"'self' 'nonce-[A-Za-z0-9+/=_-]+'", directives["script-src"])
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


def test_it_puts_the_csp_nonce_on_every_script(page: object) -> None:
    html = page.content.decode()  # type: ignore[attr-defined]
    nonce = re.search(r"'nonce-([^']+)'", page["Content-Security-Policy"]).group(1)  # type: ignore[index, union-attr]
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts
    assert all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert "<style" not in html
    assert " style=" not in html


def test_it_sends_the_other_hardening_headers(page: object) -> None:
    assert page["X-Frame-Options"] == "DENY"  # type: ignore[index]
    assert page["X-Content-Type-Options"] == "nosniff"  # type: ignore[index]
    assert page["Referrer-Policy"] == "same-origin"  # type: ignore[index]
    assert page["Cross-Origin-Opener-Policy"] == "same-origin"  # type: ignore[index]
    policy = page["Permissions-Policy"]  # type: ignore[index]
    assert "camera=()" in policy
    assert "geolocation=()" in policy
    assert "publickey-credentials-get=(self)" in policy


@override_settings(SECURE_HSTS_SECONDS=31_536_000, SECURE_SSL_REDIRECT=True)
def test_it_sends_hsts_over_https_and_redirects_plain_http(db: None) -> None:
    secure = Client().get("/login/", secure=True)
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    plain = Client().get("/login/")
    assert plain.status_code == 301
    assert plain["Location"].startswith("https://")


@override_settings(SECURE_SSL_REDIRECT=True)
def test_it_lets_probes_through_without_tls(db: None) -> None:
    assert Client().get("/healthz").status_code == 200


@override_settings(
    SESSION_COOKIE_SECURE=True,
    CSRF_COOKIE_SECURE=True,
    SESSION_COOKIE_NAME="__Host-caspix_session",
    CSRF_COOKIE_NAME="__Host-caspix_csrf",
)
def test_it_sets_host_prefixed_secure_httponly_samesite_cookies(analyst: User) -> None:
    response = Client().get("/login/", secure=True)
    csrf = response.cookies["__Host-caspix_csrf"]
    assert csrf["secure"]
    assert csrf["httponly"]
    assert csrf["samesite"] == "Lax"
    assert csrf["path"] == "/"
    response = Client().post(
        "/login/", {"username": analyst.username, "password": "correct horse battery staple"}, secure=True
    )
    session = response.cookies["__Host-caspix_session"]
    assert session["secure"]
    assert session["httponly"]
    assert session["samesite"] == "Lax"
    assert not session["domain"]
