"""The application's database role may only INSERT and SELECT the ledger (deploy/postgres/grants.sql)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Checkpoint, Event
from audit.verify import verify

GRANTS = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "grants.sql"

# The role and the grants must be committed for psql, in a session of its own, to see them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def as_app_role() -> Iterator[str]:
    """A role with exactly the grants of the script, and this test's connection acting as it."""
    role = f"caspix_app_{secrets.token_hex(4)}"
    database = settings.DATABASES["default"]
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" NOLOGIN')
    # The grants run in their own session (psql), as an operator would run them; they must see
    # the test's tables, which exist since the migrations committed before the test began.
    command = ["psql", "-X", "-q", "-v", f"app_role={role}", "-f", str(GRANTS)]
    command += ["-h", database["HOST"] or "127.0.0.1", "-p", str(database["PORT"] or 5432), "-U", database["USER"]]
    command += ["-d", database["NAME"]]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{role}"')
    try:
        yield role
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
        with connection.cursor() as cursor:
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')


def test_it_records_and_sequences_as_the_application_role(as_app_role: str) -> None:
    with transaction.atomic():  # sequenced and sealed on commit (inline under the test settings)
        record(EventType.KEY_ROTATED, actor=Actor.system("test"))
    assert Event.objects.count() == 1
    assert Checkpoint.objects.get().size == 1
    assert verify().intact


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET object_id = 'x'",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
        "UPDATE audit_checkpoint SET note = ''",
        "DELETE FROM audit_tree_node",
        "DELETE FROM crypto_integrity_incident",
        "UPDATE audit_pending SET body = ''",
    ],
)
def test_it_refuses_the_application_role_any_change_to_the_ledger(as_app_role: str, statement: str) -> None:
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
