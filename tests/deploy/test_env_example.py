"""deploy/.env.example: production, every setting documented, and no secret in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|TOKEN|PASSPHRASE|CREDENTIAL")
# The settings' typed readers (caspix/env.py): env.str("NAME", ...), env.secret("NAME"), ...
ENV_READ = re.compile(r"\benv\.(?:str|bool|int|list|networks|secret|optional_secret|is_set)\(\s*\"([A-Z][A-Z0-9_]*)\"")
SECRET_READ = re.compile(r"\benv\.(?:secret|optional_secret)\(\s*\"([A-Z][A-Z0-9_]*)\"")


def parse_env_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"line {number} is not NAME=value"
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"line {number}: {key!r} is not a variable name"
        assert key not in values, f"{key} is set twice"
        assert not value.startswith(("'", '"')), f"{key}: compose env files take values unquoted"
        assert " #" not in value, f"{key}: no comment after a value"
        values[key] = value
    return values


def documented_names(text: str) -> set[str]:
    """Names set, or shown commented out (``# NAME=default``), in the example."""
    return set(re.findall(r"^[#\s]*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


@pytest.fixture(scope="module")
def text() -> str:
    return ENV_EXAMPLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def values(text: str) -> dict[str, str]:
    return parse_env_file(text)


def test_it_parses_a_compose_env_file() -> None:
    assert parse_env_file("# comment\n\nA=1\nB=\nC=x=y\n") == {"A": "1", "B": "", "C": "x=y"}


def test_it_selects_the_production_profile(values: dict[str, str]) -> None:
    assert values["CASPIX_ENV"] == "production"
    assert values["CASPIX_KEY_BACKEND"] == "transit"
    assert values["CASPIX_VAULT_ADDR"].startswith("https://")
    assert values["CASPIX_BEHIND_TLS_PROXY"] == "true"
    assert "CASPIX_DEBUG" not in values


def test_it_sets_no_secret_directly(values: dict[str, str]) -> None:
    for key, value in values.items():
        if not SECRET_WORDS.search(key):
            continue
        assert key.endswith("_FILE"), f"{key}: secrets are given as *_FILE paths only"
        assert value == "" or value.startswith("/run/secrets/"), key


def test_it_gives_the_urls_carrying_passwords_as_files(values: dict[str, str]) -> None:
    files = {
        "CASPIX_SECRET_KEY": "/run/secrets/caspix_secret_key",
        "DATABASE_URL": "/run/secrets/database_url",
        "CELERY_BROKER_URL": "/run/secrets/celery_broker_url",
        "CASPIX_VAULT_TOKEN": "/run/secrets/vault_token",
    }
    for name, path in files.items():
        assert name not in values, name
        assert values[f"{name}_FILE"] == path, name
    for key, value in values.items():
        assert not re.search(r"://[^/\s@:]*:[^/\s@]+@", value), key


def test_it_uses_example_host_names(values: dict[str, str]) -> None:
    assert values["CASPIX_ALLOWED_HOSTS"] == "caspix.bank.example"
    assert values["CASPIX_CSRF_TRUSTED_ORIGINS"] == "https://caspix.bank.example"
    assert values["CASPIX_METRICS_ALLOWED_CIDRS"] == "10.0.0.0/8"


def test_it_documents_every_setting_the_app_reads(text: str) -> None:
    # Fails when a setting is added to caspix/settings.py without a line here (set or commented out).
    settings = (ROOT / "caspix" / "settings.py").read_text(encoding="utf-8")
    read = set(ENV_READ.findall(settings))
    assert {"CASPIX_ENV", "CASPIX_SECRET_KEY", "DATABASE_URL"} <= read
    secrets = set(SECRET_READ.findall(settings))
    documented = documented_names(text)
    missing = {name for name in read if name not in documented and f"{name}_FILE" not in documented}
    assert not missing, f"not in deploy/.env.example: {sorted(missing)}"
    for name in secrets:
        assert name not in parse_env_file(text), f"{name} is a secret: document {name}_FILE"
