"""Reading many rows as they stood at one moment."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from django.db import connection


@contextlib.contextmanager
def one_moment() -> Iterator[None]:
    """Every query of the transaction opened inside sees one database snapshot (REPEATABLE READ on
    PostgreSQL): what commits meanwhile is in it whole or not at all. Inside a caller's transaction
    (a test's), that transaction's isolation stands; SQLite serialises its writers anyway."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    connection.ensure_connection()
    raw: psycopg.Connection[Any] = connection.connection
    before = raw.isolation_level
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        yield
    finally:
        if not raw.closed:
            raw.isolation_level = before
