"""A real Celery worker process, on Redis, runs a task whose effect lands in PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.utils import timezone

from accounts.tasks import clear_expired_sessions
from caspix.celery import app

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def worker_database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_queue() -> Iterator[str]:
    """A worker consuming a queue of its own, so parallel test runs never share deliveries."""
    queue = f"test-{uuid.uuid4().hex}"
    env = {**os.environ, "CASPIX_ENV": "test", "DATABASE_URL": worker_database_url()}
    command = [sys.executable, "-m", "celery", "-A", "caspix", "worker", "--queues", queue, "--pool", "solo"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield queue
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert b"Traceback" not in stderr, stderr.decode()


def make_session(key: str, expired: bool) -> None:
    when = timezone.now() + timedelta(days=-1 if expired else 1)
    Session.objects.create(session_key=key, session_data="e30", expire_date=when)


def wait_until(condition: object, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_it_runs_the_task_in_a_worker_and_the_effect_is_in_postgresql(worker_queue: str) -> None:
    assert connection.vendor == "postgresql"
    assert not settings.CELERY_TASK_ALWAYS_EAGER
    make_session("expired" + "0" * 25, expired=True)
    make_session("current" + "0" * 25, expired=False)

    with transaction.atomic():
        # Enqueued on commit: the worker never sees a task for data it cannot read yet.
        transaction.on_commit(lambda: clear_expired_sessions.apply_async(queue=worker_queue))

    assert wait_until(lambda: not Session.objects.filter(session_key__startswith="expired").exists())
    assert Session.objects.filter(session_key__startswith="current").exists()


def test_it_enqueues_on_commit_and_never_after_a_rollback() -> None:
    queue = f"test-{uuid.uuid4().hex}"

    def pending() -> int:
        with app.connection_for_write() as conn:
            return int(conn.default_channel.client.llen(queue))  # type: ignore[attr-defined]

    def enqueue() -> None:
        transaction.on_commit(lambda: clear_expired_sessions.apply_async(queue=queue))

    try:
        with transaction.atomic():
            enqueue()
            transaction.set_rollback(True)
        assert pending() == 0
        with transaction.atomic():
            enqueue()
            assert pending() == 0
        assert pending() == 1
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.client.delete(queue)  # type: ignore[attr-defined]


def test_it_configures_tasks_for_redelivery() -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.accept_content == ["json"]
