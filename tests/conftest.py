"""Personas, one per shipped role (PRODUCT.md, "Who uses it"), and shared fixtures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from pytest_django.fixtures import Settings

from accounts.models import TOTPDevice, User
from caspix.access import STEP_UP_SESSION_KEY
from caspix.crypto import envelope, keys
from tests.factories import PASSWORD, ensure_shipped_roles, make_user
from tests.openbao import OpenBao, OpenBaoError, dev_server

_DB_FIXTURES = {"db", "transactional_db", "live_server", "django_db_reset_sequences"}


@pytest.fixture(autouse=True)
def shipped_data(request: pytest.FixtureRequest) -> None:
    """Put back what the data migrations ship after a transactional test flushed it.

    A transactional test (browser, worker) empties every table when it ends; tests after it
    still expect the shipped role templates, as a migrated database has them.
    """
    if not (_DB_FIXTURES & set(request.fixturenames) or request.node.get_closest_marker("django_db")):
        return
    request.getfixturevalue("django_db_setup")
    blocker = request.getfixturevalue("django_db_blocker")
    with blocker.unblock():
        ensure_shipped_roles()


# The append-only tables: the ledger's, case notes and evidence, generated report files (children
# first).
LEDGER_TABLES = (
    "reporting_reportfilecontent",
    "audit_event",
    "audit_tree_node",
    "audit_checkpoint",
    "cases_evidencecontent",
    "cases_evidence",
    "cases_note",
)


@pytest.fixture(autouse=True)
def empty_ledger_after_transactional_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty the append-only ledger tables before pytest-django's flush, as their owner may.

    The triggers refuse to truncate a table that holds rows; disabling them takes ownership of
    the table, which the application's role never has (deploy/postgres/grants.sql).
    """
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or (
        marker is not None and marker.kwargs.get("transaction", False)
    )
    if not transactional:
        yield
        return
    request.getfixturevalue("transactional_db")
    yield
    from django.db import connection

    with connection.cursor() as cursor:
        for table in LEDGER_TABLES:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (a constant table name)
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture(autouse=True)
def cold_key_cache() -> Iterator[None]:
    """Every test starts with no data key in memory (a flushed database has none either)."""
    envelope.cache.clear()
    yield
    envelope.cache.clear()


@pytest.fixture
def keyring(tmp_path: Path, settings: Settings) -> Iterator[keys.LocalKeyring]:
    """A keyring of the test's own, for tests that rotate or retire keys."""
    keys.key_service.cache_clear()
    settings.KEYRING_FILE = tmp_path / "keyring.json"
    service = keys.key_service()
    assert isinstance(service, keys.LocalKeyring)
    service.ensure_keys()
    yield service
    keys.key_service.cache_clear()


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def admin(db: None) -> User:
    return make_user(username="alice", roles=["admin"])


@pytest.fixture
def analyst(db: None) -> User:
    return make_user(username="bob", roles=["analyst"])


@pytest.fixture
def lead(db: None) -> User:
    return make_user(username="charlie", roles=["lead"])


@pytest.fixture
def manager(db: None) -> User:
    return make_user(username="dana", roles=["manager"])


@pytest.fixture
def auditor(db: None) -> User:
    return make_user(username="erin", roles=["auditor"])


@pytest.fixture
def roleless(db: None) -> User:
    return make_user(username="frank")


def client_for(user: User, *, verified: bool = True) -> Client:
    """A client signed in as ``user``; ``verified``: past the second factor, freshly (step-up)."""
    client = Client()
    client.force_login(user)
    if verified:
        verify_session(client, user)
    return client


def verify_session(client: Client, user: User) -> None:
    """Mark the client's session as having verified a second factor just now."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Test authenticator", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """A real OpenBao dev server for the whole session (see :mod:`tests.openbao`)."""
    try:
        with dev_server(tmp_path_factory.mktemp("openbao")) as server:
            yield server
    except OpenBaoError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def second_admin(db: None) -> User:
    """Another administrator, to approve what ``admin`` asks for."""
    return make_user(username="grace", roles=["admin"])
