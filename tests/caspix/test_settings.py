"""Production settings refuse to start without their secrets and harden every cookie and header.

Each case imports the settings in a fresh interpreter, as a process would at start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 30 + "-production-secret-" + "t" * 30

PRODUCTION = {
    "CASPIX_ENV": "production",
    "CASPIX_SECRET_KEY": SECRET,
    "CASPIX_ALLOWED_HOSTS": "caspix.bank.example",
    "CASPIX_WEBAUTHN_RP_ID": "caspix.bank.example",
    "CASPIX_WEBAUTHN_ORIGINS": "https://caspix.bank.example",
    "DATABASE_URL": "postgres://caspix@db.invalid/caspix",
    "CELERY_BROKER_URL": "redis://redis.invalid:6379/0",
    "CASPIX_VAULT_ADDR": "https://openbao.invalid:8200",
    "CASPIX_VAULT_TOKEN": "placeholder-token",
}

PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({name: getattr(settings, name) for name in %r}, default=str))
"""


def load_settings(env: dict[str, str], *names: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CASPIX_", "DATABASE_URL", "CELERY_"))}
    return subprocess.run(
        [sys.executable, "-c", PROBE % (list(names),)],
        env={**clean, "DJANGO_SETTINGS_MODULE": "caspix.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def production_settings(*names: str, **overrides: str) -> dict[str, object]:
    result = load_settings({**PRODUCTION, **overrides}, *names)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize(
    "missing",
    [
        "CASPIX_SECRET_KEY",
        "CASPIX_ALLOWED_HOSTS",
        "CASPIX_WEBAUTHN_RP_ID",
        "CASPIX_WEBAUTHN_ORIGINS",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CASPIX_VAULT_ADDR",
    ],
)
def test_it_refuses_to_start_in_production_without(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = load_settings(env, "DEBUG")
    assert result.returncode != 0
    assert f"ConfigError: {missing}" in result.stderr


def test_it_defaults_to_production_when_the_environment_is_unset() -> None:
    result = load_settings({}, "DEBUG")
    assert result.returncode != 0
    assert "CASPIX_SECRET_KEY" in result.stderr


def test_it_refuses_a_short_secret_key_without_showing_it() -> None:
    result = load_settings({**PRODUCTION, "CASPIX_SECRET_KEY": "short-key"}, "DEBUG")
    assert "CASPIX_SECRET_KEY is too short" in result.stderr
    assert "short-key" not in result.stderr


def test_it_reads_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(SECRET + "\n", encoding="utf-8")
    env = {k: v for k, v in PRODUCTION.items() if k != "CASPIX_SECRET_KEY"}
    result = load_settings({**env, "CASPIX_SECRET_KEY_FILE": str(tmp_path / "key")}, "SECRET_KEY")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["SECRET_KEY"] == SECRET


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"CASPIX_DEBUG": "true"}, "CASPIX_DEBUG must not be enabled"),
        ({"CASPIX_KEY_BACKEND": "local"}, "CASPIX_KEY_BACKEND=local is refused"),
        ({"CASPIX_VAULT_ADDR": "http://openbao:8200"}, "CASPIX_VAULT_ADDR must be an https:// URL"),
        ({"CASPIX_VAULT_TOKEN": ""}, "CASPIX_VAULT_TOKEN (or CASPIX_VAULT_ROLE_ID"),
        ({"CASPIX_ENV": "staging"}, "CASPIX_ENV='staging' is not one of production, demo, test"),
    ],
)
def test_it_refuses_unsafe_production_settings(override: dict[str, str], message: str) -> None:
    result = load_settings({**PRODUCTION, **override}, "DEBUG")
    assert result.returncode != 0
    assert message in result.stderr


def test_it_hardens_cookies_and_transport_in_production() -> None:
    loaded = production_settings(
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_NAME",
        "CSRF_COOKIE_NAME",
        "SESSION_COOKIE_HTTPONLY",
        "CSRF_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_SSL_REDIRECT",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "X_FRAME_OPTIONS",
        "KEY_BACKEND",
    )
    assert loaded == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_NAME": "__Host-caspix_session",
        "CSRF_COOKIE_NAME": "__Host-caspix_csrf",
        "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
        "KEY_BACKEND": "transit",
    }


def test_it_passes_the_deploy_checks_with_no_warning() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={**os.environ, **PRODUCTION},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_explains_a_configuration_error_without_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASPIX_")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={**env, "CASPIX_ENV": "production"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.startswith("Caspix configuration error: CASPIX_SECRET_KEY")
    assert "Traceback" not in result.stderr


def test_it_refuses_a_passkey_origin_that_is_not_https() -> None:
    result = load_settings({**PRODUCTION, "CASPIX_WEBAUTHN_ORIGINS": "http://caspix.bank.example"}, "DEBUG")
    assert result.returncode != 0
    assert "ConfigError: CASPIX_WEBAUTHN_ORIGINS" in result.stderr


def test_it_lets_the_sign_out_form_reach_the_oidc_providers_end_session_endpoint() -> None:
    oidc = {
        "CASPIX_OIDC_ISSUER": "https://login.bank.example",
        "CASPIX_OIDC_CLIENT_ID": "caspix",
        "CASPIX_OIDC_CLIENT_SECRET": "s" * 40,
        "CASPIX_OIDC_AUTHORIZATION_ENDPOINT": "https://login.bank.example/auth",
        "CASPIX_OIDC_TOKEN_ENDPOINT": "https://login.bank.example/token",
        "CASPIX_OIDC_USERINFO_ENDPOINT": "https://login.bank.example/me",
        "CASPIX_OIDC_JWKS_URI": "https://login.bank.example/jwks",
        "CASPIX_OIDC_END_SESSION_ENDPOINT": "https://login.bank.example/session/end",
    }
    loaded = production_settings("CONTENT_SECURITY_POLICY", **oidc)
    assert loaded["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["form-action"] == ["'self'", "https://login.bank.example"]  # type: ignore[index]
    plain = load_settings(
        {**PRODUCTION, **oidc, "CASPIX_OIDC_TOKEN_ENDPOINT": "http://login.bank.example/token"}, "DEBUG"
    )
    assert plain.returncode != 0
    assert "must be https:// URLs" in plain.stderr
