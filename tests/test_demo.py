"""The embedded default boots as `make demo` runs it: SQLite, in-process Celery, local keyring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.server import gunicorn_process

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CASPIX_", "DATABASE_URL", "CELERY_"))}
    return {**clean, "CASPIX_ENV": "demo", "CASPIX_VAR_DIR": str(tmp_path / "var")}


REACH = """
from accounts.models import User
from cases.models import Case
for name in ("analyst", "lead", "admin"):
    print(f"{name}={Case.objects.restrict(User.objects.get(username=name), 'work').count()}")
print(f"total={Case.objects.count()}")
"""


RECORD = """
from django.db import transaction
from audit.events import EventType
from audit.ledger import Actor, record
for n in range(2):
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=Actor.system("demo test"), object_id=n)
"""


EXPORT = """
import io
from accounts.models import User
from audit.ledger import published_keys
from caspix_verify import load_public_keys, verify_pack
import json
from cases.models import Case
from reporting import exports
auditor = User.objects.get(username="auditor")
case = Case.objects.restrict(auditor, "export").order_by("pk").first()
made = exports.request_export("case_pack", case=case, acting_user=auditor)  # built in-process, on commit
made.refresh_from_db()
_, chunks = exports.download(str(made.pk), acting_user=auditor)
result = verify_pack(io.BytesIO(b"".join(chunks)), load_public_keys(json.dumps(published_keys())))
print(made.status, result.intact, result.problems)
"""


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)


def test_it_migrates_seeds_and_serves_the_login_page(demo_env: dict[str, str], tmp_path: Path) -> None:
    manage(demo_env, "migrate", "--noinput", "--verbosity", "0")
    seeded = manage(demo_env, "seed_demo")
    users = json.loads((tmp_path / "var" / "demo-users.json").read_text(encoding="utf-8"))
    assert [u["username"] for u in users] == ["admin", "analyst", "lead", "manager", "auditor"]
    assert all(u["password"] in seeded.stdout for u in users)
    assert (tmp_path / "var" / "caspix.sqlite3").exists()
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
    manage(demo_env, "seed_demo_cases")
    manage(demo_env, "seed_demo_cases")  # idempotent
    reach = manage(demo_env, "shell", "--verbosity", "0", "-c", REACH).stdout.split()
    # On SQLite too, the analyst sees the card-fraud queue's cases only, and the admin none.
    assert reach == ["analyst=4", "lead=4", "admin=0", "total=6"]
    # An audited action's event is sequenced at once (the demo has no worker and no beat), and
    # the ledger verifies on SQLite as on PostgreSQL.
    manage(demo_env, "shell", "--verbosity", "0", "-c", RECORD)
    report = json.loads(manage(demo_env, "audit_verify", "--json").stdout)
    assert (report["intact"], report["size"]) == (True, 2)
    # An evidence pack is built in-process on SQLite, and verifies.
    exported = manage(demo_env, "shell", "--verbosity", "0", "-c", EXPORT).stdout.strip().splitlines()[-1]
    assert exported == "ready True []"

    with gunicorn_process(demo_env, settings="caspix.settings") as client:
        login = client("/login/")
        assert login.status == 200
        assert b"Sign in" in login.read()
        ready = client("/readyz")
        assert json.loads(ready.read()) == {"status": "ok", "checked": ["database", "broker", "keys"]}
    assert (tmp_path / "var" / "keyring.json").exists()


def test_it_refuses_demo_users_under_production_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASPIX_")}
    env |= {"CASPIX_ENV": "production", "CASPIX_SECRET_KEY": "p" * 60, "CASPIX_ALLOWED_HOSTS": "x.example"}
    env |= {"CASPIX_WEBAUTHN_RP_ID": "x.example", "CASPIX_WEBAUTHN_ORIGINS": "https://x.example"}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "CELERY_BROKER_URL": "redis://127.0.0.1:9/0"}
    env |= {"CASPIX_VAULT_ADDR": "https://openbao.invalid", "CASPIX_VAULT_TOKEN": "t"}
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "seed_demo runs only when CASPIX_ENV=demo" in result.stderr
