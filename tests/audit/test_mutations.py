"""Property: whatever events were appended, any single-byte change to any stored value is found."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import ledger
from audit.events import EventType
from audit.ledger import Actor, record
from audit.verify import verify

pytestmark = pytest.mark.django_db

TARGETS = [
    ("audit_event", "body"),
    ("audit_event", "leaf"),
    ("audit_event", "chain"),
    ("audit_tree_node", "hash"),
    ("audit_checkpoint", "note"),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=5),
    target=st.sampled_from(TARGETS),
    pick=st.integers(min_value=0),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_it_finds_any_single_byte_change(
    batches: list[int], target: tuple[str, str], pick: int, position: int, flip: int
) -> None:
    table, column = target
    with transaction.atomic():  # every example starts from an empty ledger and leaves nothing
        for size in batches:  # appended in batches, each sealed by a checkpoint
            with transaction.atomic():
                for n in range(size):
                    record(EventType.KEY_ROTATED, actor=Actor.system("property"), object_id=n, after={"n": n})
            ledger.integrate(batch_size=size)
            ledger.seal(force=True)
        assert verify().intact
        with connection.cursor() as cursor:
            key = "seq" if table == "audit_event" else ("size" if table == "audit_checkpoint" else "level, index")
            cursor.execute(f"SELECT {key}, {column} FROM {table} ORDER BY {key}")  # noqa: S608 (constants)
            rows = cursor.fetchall()
            if not rows:  # a one-event ledger has no interior tree node
                transaction.set_rollback(True)
                return
            row = rows[pick % len(rows)]
            value = bytearray(row[-1].encode() if isinstance(row[-1], str) else bytes(row[-1]))
            value[position % len(value)] ^= flip
            changed: str | bytes = value.decode(errors="replace") if isinstance(row[-1], str) else bytes(value)
            if isinstance(changed, str) and "\x00" in changed:  # a text column cannot hold NUL: no such edit
                transaction.set_rollback(True)
                return
            where = " AND ".join(f"{name.strip()} = %s" for name in key.split(","))
            cursor.execute("ALTER TABLE audit_event DROP CONSTRAINT IF EXISTS audit_event_columns_match_body")
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {where}", [changed, *row[:-1]])  # noqa: S608
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        report = verify()
        if table == "audit_checkpoint" and changed == row[-1]:
            transaction.set_rollback(True)  # the flip produced the same text (an invalid byte replaced)
            return
        assert not report.intact, (table, column, row[:-1])
        if table == "audit_event":
            assert report.first_bad_seq == row[0]
        transaction.set_rollback(True)
