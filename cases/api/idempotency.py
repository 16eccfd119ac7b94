"""``Idempotency-Key``: a retried request gets the first answer, never a second alert.

Per (client, key), the first request that completes stores its answer and a fingerprint of the
request (SHA-256 over method, path and body) in the same transaction as the alerts it kept.
Then:

* the same key with the same request gets the stored answer again (``Idempotent-Replayed: true``);
* the same key with another request gets 422 (``idempotency-key-reused``);
* the same key while the first request is still being served gets 409
  (``idempotency-key-in-flight``): on PostgreSQL a session advisory lock held for the request
  says so at once; the unique (client, key) constraint is the backstop everywhere.

Records are kept for ``INTAKE["IDEMPOTENCY_HOURS"]`` (``purge``).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection
from django.utils import timezone

from cases.models import ApiClient, IdempotencyRecord
from caspix.problems import Problem

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


def in_flight() -> Problem:
    return Problem(409, "idempotency-key-in-flight", "A request with this key is being served", "retry later")


@dataclass
class Claim:
    """A key this request holds: ``replay`` is the stored answer when there is one."""

    client: ApiClient
    key: str
    fingerprint: str
    replay: IdempotencyRecord | None = None

    def store(self, status: int, response: Any) -> None:
        """Keep the answer, inside the transaction that kept the alerts."""
        try:
            IdempotencyRecord.objects.create(
                client=self.client, key=self.key, fingerprint=self.fingerprint, status=status, response=response
            )
        except IntegrityError:  # served concurrently (SQLite has no advisory lock): it rolls back
            raise in_flight() from None


def key_of(headers: Any) -> str:
    key = headers.get(HEADER)
    if not key:
        raise Problem(400, "idempotency-key-required", "The request has no Idempotency-Key", f"send {HEADER}")
    if len(key) > MAX_LENGTH or not all(" " < char <= "~" for char in key):
        raise Problem(
            400, "idempotency-key-malformed", "The Idempotency-Key is malformed", f"1 to {MAX_LENGTH} visible ASCII"
        )
    return str(key)


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"%s\n%s\n%s" % (method.encode(), path.encode(), body)).hexdigest()


@contextlib.contextmanager
def claim(client: ApiClient, key: str, print_: str) -> Iterator[Claim]:
    """Hold ``key`` for this request: 409 while another holds it, 422 for another request."""
    lock = int.from_bytes(hashlib.sha256(f"idempotency|{client.pk}|{key}".encode()).digest()[:8], "big", signed=True)
    locked = False
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock])
            locked = bool(cursor.fetchone()[0])
        if not locked:
            raise in_flight()
    try:
        record = IdempotencyRecord.objects.filter(client=client, key=key).first()
        if record is not None and record.fingerprint != print_:
            raise Problem(
                422,
                "idempotency-key-reused",
                "The Idempotency-Key was used for another request",
                "use a new key for a new request",
            )
        yield Claim(client, key, print_, replay=record)
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock])


def purge(now: datetime.datetime | None = None) -> int:
    """Forget the answers older than the retention (a daily task)."""
    cutoff = (now or timezone.now()) - datetime.timedelta(hours=settings.INTAKE["IDEMPOTENCY_HOURS"])
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
