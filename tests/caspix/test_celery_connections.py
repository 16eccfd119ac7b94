"""A worker keeps its database connection from task to task, and closes it as a web process
would: when it is broken or too old."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection

from caspix import celery
from caspix.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def task(eager: bool) -> Any:
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def test_celery_is_told_to_reuse_the_connection() -> None:
    assert app.conf.get("CELERY_DB_REUSE_MAX") == 1000


def test_a_healthy_connection_stays_open_across_tasks() -> None:
    connection.ensure_connection()
    raw = connection.connection
    connection.close_at = None  # no CONN_MAX_AGE, whatever the environment sets
    celery.close_old_connections(sender=task(eager=False))
    celery.close_old_connections(sender=task(eager=False))
    connection.ensure_connection()
    assert connection.connection is raw


def test_an_old_connection_is_closed_around_a_task() -> None:
    connection.ensure_connection()
    raw = connection.connection
    connection.close_at = 0.0  # its CONN_MAX_AGE is over
    celery.close_old_connections(sender=task(eager=False))
    assert connection.connection is None
    assert raw.closed


def test_a_task_run_eagerly_leaves_the_callers_connection_alone() -> None:
    connection.ensure_connection()
    raw = connection.connection
    connection.close_at = 0.0
    celery.close_old_connections(sender=task(eager=True))
    assert connection.connection is raw
