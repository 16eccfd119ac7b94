"""Integrity incidents: a ciphertext, key or backup that failed authentication.

An incident is logged (masked, as every line), counted in ``/metrics`` and stored in
:class:`~caspix.crypto.models.IntegrityIncident` on a connection of its own, outside any
transaction of the caller, so the rollback of the request that found it cannot erase it.
"""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils import timezone
from prometheus_client import Counter

from caspix.requestcontext import request_id_var

logger = logging.getLogger("caspix.security")

INCIDENTS = Counter("caspix_integrity_incidents", "Ciphertexts, keys or backups that failed authentication", ["kind"])

_INSERT = (
    'INSERT INTO crypto_integrity_incident (kind, "table", "column", "row", detail, request_id, occurred_at)'
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def record(kind: str, *, table: str = "", column: str = "", row: str = "", detail: str = "") -> str:
    """Record an incident; returns its id, or ``"unstored"`` when the database refused it too."""
    request_id = request_id_var.get()
    INCIDENTS.labels(kind=kind).inc()
    incident_id = _store(
        kind, table[:128], column[:128], row[:64], detail[:200], "" if request_id == "-" else request_id
    )
    logger.error(
        "integrity incident",
        extra={
            "event": "integrity_incident",
            "incident": incident_id,
            "kind": kind,
            "table": table,
            "column": column,
            "row": row,
            "detail": detail,
        },
    )
    return incident_id


def _store(kind: str, table: str, column: str, row: str, detail: str, request_id: str) -> str:
    connection = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with connection.cursor() as cursor:
            sql = _INSERT + (" RETURNING id" if connection.features.can_return_columns_from_insert else "")
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            cursor.execute(sql, [kind, table, column, row, detail, request_id, now])
            incident_id = (
                cursor.fetchone()[0] if connection.features.can_return_columns_from_insert else cursor.lastrowid
            )
        return str(incident_id)
    except DatabaseError:
        logger.exception("the integrity incident could not be stored")
        return "unstored"
    finally:
        connection.close()
