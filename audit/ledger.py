"""Record, sequence and seal ledger events.

``record()`` is the only way an event enters the ledger. It runs inside the acting transaction and
inserts the event's canonical body into ``audit_pending``: the event commits, or rolls back, with
the business change. Writers never wait for each other.

``integrate()`` moves pending events into the ledger in batches, one integrator at a time (a
PostgreSQL advisory lock; SQLite serialises writers itself): each gets the next sequence number,
its leaf hash, its chain link and the Merkle nodes it completes. Only committed events are
visible to it, so a sequence number is never given to an event that later rolls back: the
sequence has no gap, and a committed event's position never changes. ``seal()`` then signs a
checkpoint when one is due (every ``LEDGER["CHECKPOINT_EVENTS"]`` events or
``LEDGER["CHECKPOINT_SECONDS"]`` seconds), after proving the tree it signs consistent with the
previous checkpoint. Celery runs both on commit of every recording transaction and on a beat.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import operator
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit import merkle
from audit.canonical import canonical, rfc3339
from audit.events import EventType
from audit.models import Checkpoint, Event, PendingEvent, TreeNode
from caspix.crypto.events import KeyEvent
from caspix.crypto.keys import KeyName, key_service
from caspix.requestcontext import client_address_var, request_id_var

FORMAT = 1
_LOCK_KEY = 0x6361737069786C67  # "caspixlg": the integrator's advisory lock
ZERO_CHAIN = bytes(32)
_INSERT_PENDING = "INSERT INTO audit_pending (body, recorded_at) VALUES (%s, %s) RETURNING id"


class _PreparedCursor(psycopg.Cursor[Any]):
    """A server-side-binding cursor whose statements are prepared at their first run."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        return super().execute(query, params, prepare=True)


@dataclass(frozen=True)
class Actor:
    """Who acted, as the ledger keeps it: an id and a name and role copied at the time."""

    id: int | None
    name: str
    role: str = ""

    @classmethod
    def system(cls, name: str) -> Actor:
        """A named process of Caspix itself (a worker, a management command)."""
        return cls(None, name, "system")


def record(
    event_type: EventType,
    *,
    actor: Actor,
    object_type: str = "",
    object_id: str | int = "",
    reason: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> PendingEvent:
    """Record an event in the acting transaction (which must be open).

    The source address and request id come from the request being served, if any. Sensitive
    values in ``before``/``after`` are refused (:class:`~audit.canonical.CanonicalError`).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("record() runs inside the action's transaction (transaction.atomic)")
    now = timezone.now()
    document = _document(Entry(event_type, object_type, object_id, reason, before, after), actor, now)
    pending = PendingEvent(body=canonical(document), recorded_at=now)
    pending.pk = _insert_pending(bytes(pending.body), now)
    _integrate_on_commit()
    return pending


@dataclass(frozen=True)
class Entry:
    """One event of :func:`record_many`: what :func:`record` takes, but the actor."""

    event_type: EventType
    object_type: str = ""
    object_id: str | int = ""
    reason: str = ""
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


def record_many(entries: Sequence[Entry], *, actor: Actor) -> None:
    """Record the events of one action by one actor, in order, with one statement (a batch of
    alerts kept at once, say): what :func:`record` does for each, without a round trip each."""
    if not connection.in_atomic_block:
        raise RuntimeError("record_many() runs inside the action's transaction (transaction.atomic)")
    if not entries:
        return
    now = timezone.now()
    bodies = [canonical(_document(entry, actor, now)) for entry in entries]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "INSERT INTO audit_pending (body, recorded_at) SELECT body, %s"
                " FROM unnest(%s::bytea[]) WITH ORDINALITY AS batch(body, n) ORDER BY n",
                [now, bodies],
            )
        else:
            cursor.executemany(
                "INSERT INTO audit_pending (body, recorded_at) VALUES (%s, %s)", [(b, now) for b in bodies]
            )
    _integrate_on_commit()


def _document(entry: Entry, actor: Actor, now: datetime) -> dict[str, Any]:
    request_id = request_id_var.get()
    return {
        "v": FORMAT,
        "type": int(entry.event_type),
        "name": entry.event_type.name,
        "time": rfc3339(now),
        "actor": {"id": actor.id, "name": actor.name, "role": actor.role},
        "source": {"address": client_address_var.get(), "request": None if request_id == "-" else request_id},
        "object": {"type": entry.object_type, "id": str(entry.object_id)},
        "reason": entry.reason,
        "before": dict(entry.before) if entry.before is not None else None,
        "after": dict(entry.after) if entry.after is not None else None,
    }


def _integrate_on_commit() -> None:
    """One request for integration per transaction: skip when one is registered that survives
    whatever may roll back from here (its savepoints are all still open around this point)."""
    open_savepoints = set(connection.savepoint_ids)
    if not any(item[1] is _schedule_integration and item[0] <= open_savepoints for item in connection.run_on_commit):
        transaction.on_commit(_schedule_integration, robust=True)


def _insert_pending(body: bytes, now: datetime) -> int:
    """One statement rather than the ORM's insert: it runs in every audited action. On PostgreSQL
    it is a prepared statement (parsed and planned once per connection) that sends the body as
    binary, through Django's cursor wrapper all the same (query logging, execute wrappers)."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.wrap_database_errors:  # a closed connection raises Django's error, as elsewhere
            raw = _PreparedCursor(connection.connection)
        wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
        cursor = wrap(raw)  # type: ignore[arg-type]
    else:
        cursor = connection.cursor()
    with cursor:
        cursor.execute(_INSERT_PENDING, [body, now])
        row = cursor.fetchone()
    return int(row[0])


class _Scheduler:
    """Ask a worker to sequence newly committed events: from each process, at most one task at
    once and one more at the end of each window of ``LEDGER["SCHEDULE_WINDOW"]`` seconds,
    instead of one task per transaction.

    Publishing costs a broker round trip (about 0.4 ms, as much as a small action) and each task
    a worker's turn: one task per transaction would double the cost of auditing under load.
    Every event is still sequenced by the end of the window it commits in (plus the worker's
    delay): either its commit asks for a run at once, or a run is already set for the window's
    end. A task the broker loses is made up by the beat's run every few seconds.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window_ends = 0.0
        self.deferred = False

    def __call__(self) -> None:
        if settings.LEDGER["INTEGRATE"] == "inline":
            integrate_all()
            return
        with self.lock:
            now = time.monotonic()
            if now >= self.window_ends:
                self.window_ends, self.deferred = now + settings.LEDGER["SCHEDULE_WINDOW"], False
                countdown = None
            elif not self.deferred:
                self.deferred = True
                countdown = self.window_ends - now
            else:
                return
        from audit.tasks import integrate_ledger

        integrate_ledger.apply_async(kwargs={"seal_when_idle": False}, countdown=countdown, expires=60)  # type: ignore[arg-type]


_scheduler = _Scheduler()


def _schedule_integration() -> None:
    """What a recording transaction runs once it commits (a function: Django names it in its log
    should it fail)."""
    _scheduler()


def integrate_all(*, seal_when_idle: bool = True) -> int:
    """Sequence every pending event, then sign a checkpoint if one is due; returns how many.

    A run asked for by a commit whose events another run has sequenced already finds nothing
    pending, and then (``seal_when_idle=False``) stops there: that other run checked the
    checkpoint, and the beat's run checks it on the clock.
    """
    total = 0
    while moved := integrate():
        total += moved
    if total or seal_when_idle:
        seal()
    return total


# --- integration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    size: int
    chain: bytes


def head() -> Head:
    last = Event.objects.order_by("-seq").values_list("seq", "chain").first()
    return Head(0, ZERO_CHAIN) if last is None else Head(last[0], bytes(last[1]))


def _lock_ledger() -> None:
    """One integrator or sealer at a time, until the transaction ends (SQLite serialises writers)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def integrate(batch_size: int = 1000) -> int:
    """Sequence up to ``batch_size`` committed pending events; returns how many."""
    if not PendingEvent.objects.exists():  # the common answer for a redundant run, without the lock
        return 0
    with transaction.atomic():
        _lock_ledger()
        if connection.vendor == "postgresql":
            return _integrate_postgresql(batch_size)
        pending = list(PendingEvent.objects.order_by("id")[:batch_size])
        if not pending:
            return 0
        current = head()
        leaves = [merkle.leaf_hash(bytes(item.body)) for item in pending]
        chains, nodes = _link(current, leaves)
        now = timezone.now()
        Event.objects.bulk_create(
            _event(current.size + offset + 1, bytes(item.body), leaves[offset], chains[offset], now)
            for offset, item in enumerate(pending)
        )
        TreeNode.objects.bulk_create(TreeNode(level=level, index=index, hash=value) for level, index, value in nodes)
        PendingEvent.objects.filter(pk__in=[item.pk for item in pending]).delete()
    return len(pending)


def _link(current: Head, leaves: list[bytes]) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """The chain links of ``leaves`` appended after ``current``, and the Merkle nodes they complete."""
    known = _frontier(current.size)
    chain = current.chain
    chains: list[bytes] = []
    nodes: list[tuple[int, int, bytes]] = []
    sha256 = hashlib.sha256
    for offset, leaf in enumerate(leaves):
        index = current.size + offset  # 0-based leaf index; the sequence number is index + 1
        chain = sha256(chain + leaf).digest()
        chains.append(chain)
        known[(0, index)] = leaf
        for level, position in merkle.perfect_nodes_completed_by(index):
            value = merkle.node_hash(known[(level - 1, 2 * position)], known[(level - 1, 2 * position + 1)])
            known[(level, position)] = value
            nodes.append((level, position, value))
    return chains, nodes


# PostgreSQL hashes the leaves and reads the repeated columns out of the bodies itself (the same
# expressions its CHECK constraint holds them to): the bodies never travel to Python and back.
_PENDING_LEAVES = """
SELECT id, sha256(decode('00', 'hex') || body) FROM audit_pending ORDER BY id LIMIT %s
"""
_MOVE_PENDING = """
WITH moved AS (
    DELETE FROM audit_pending AS p
    USING unnest(%s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[]) AS v(id, seq, leaf, chain)
    WHERE p.id = v.id
    RETURNING v.seq, p.body, v.leaf, v.chain, convert_from(p.body, 'UTF8')::jsonb AS d
)
INSERT INTO audit_event
    (seq, body, leaf, chain, integrated_at, event_type, occurred_at, actor_id, object_type, object_id)
SELECT seq, body, leaf, chain, now(), (d->>'type')::integer, (d->>'time')::timestamptz,
       (d->'actor'->>'id')::bigint, d->'object'->>'type', d->'object'->>'id'
FROM moved
"""
_INSERT_NODES = """
INSERT INTO audit_tree_node (level, index, hash)
SELECT * FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[])
"""


def _integrate_postgresql(batch_size: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_PENDING_LEAVES, [batch_size])
        rows = cursor.fetchall()
        if not rows:
            return 0
        current = head()
        ids = [row[0] for row in rows]
        leaves = [bytes(row[1]) for row in rows]
        chains, nodes = _link(current, leaves)
        seqs = list(range(current.size + 1, current.size + len(rows) + 1))
        cursor.execute(_MOVE_PENDING, [ids, seqs, leaves, chains])
        if cursor.rowcount != len(rows):
            raise RuntimeError(f"moved {cursor.rowcount} pending events of {len(rows)}: the batch changed")
        if nodes:
            cursor.execute(_INSERT_NODES, [[n[0] for n in nodes], [n[1] for n in nodes], [n[2] for n in nodes]])
    return len(rows)


def _event(seq: int, body: bytes, leaf: bytes, chain: bytes, now: Any) -> Event:
    fields = parse(body)
    return Event(
        seq=seq,
        body=body,
        leaf=leaf,
        chain=chain,
        integrated_at=now,
        event_type=fields.event_type,
        occurred_at=fields.occurred_at,
        actor_id=fields.actor_id,
        object_type=fields.object_type,
        object_id=fields.object_id,
    )


@dataclass(frozen=True)
class Fields:
    """The columns an event repeats from its body."""

    event_type: int
    occurred_at: Any
    actor_id: int | None
    object_type: str
    object_id: str


def parse(body: bytes) -> Fields:
    document = json.loads(body)
    return Fields(
        event_type=document["type"],
        occurred_at=datetime.strptime(document["time"], "%Y-%m-%dT%H:%M:%S.%f%z"),
        actor_id=document["actor"]["id"],
        object_type=document["object"]["type"],
        object_id=document["object"]["id"],
    )


def _frontier(size: int) -> dict[tuple[int, int], bytes]:
    """The stored roots of the perfect subtrees that make up a tree of ``size`` leaves."""
    return stored_nodes(merkle.nodes_needed_for_subtree(0, size)) if size else {}


def stored_nodes(needed: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Fetch the stored hashes ``needed`` (level 0 from the events): one query on PostgreSQL."""
    found: dict[tuple[int, int], bytes] = {}
    leaves = [index + 1 for level, index in needed if level == 0]
    inner = [(level, index) for level, index in needed if level > 0]
    if connection.vendor == "postgresql" and needed:
        # One index scan per pair, planned once: a long OR of pairs costs more to plan than to run.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 0, e.seq - 1, e.leaf FROM audit_event e WHERE e.seq = ANY(%s::bigint[])"
                " UNION ALL SELECT n.level, n.index, n.hash"
                " FROM unnest(%s::smallint[], %s::bigint[]) AS wanted(level, index)"
                " JOIN audit_tree_node n ON n.level = wanted.level AND n.index = wanted.index",
                [leaves, [level for level, _ in inner], [index for _, index in inner]],
            )
            for level, index, value in cursor.fetchall():
                found[(level, index)] = bytes(value)
    elif needed:
        if leaves:
            for seq, leaf in Event.objects.filter(seq__in=leaves).values_list("seq", "leaf"):
                found[(0, seq - 1)] = bytes(leaf)
        if inner:
            where = functools.reduce(operator.or_, (Q(level=level, index=index) for level, index in inner))
            for level, index, value in TreeNode.objects.filter(where).values_list("level", "index", "hash"):
                found[(level, index)] = bytes(value)
    missing = needed - set(found)
    if missing:
        raise LookupError(f"the ledger is missing {len(missing)} tree nodes, e.g. {sorted(missing)[0]}")
    return found


def tree_root(size: int) -> bytes:
    if size == 0:
        return merkle.EMPTY_ROOT
    nodes = stored_nodes(merkle.nodes_needed_for_subtree(0, size))
    return merkle.subtree_root(lambda level, index: nodes[(level, index)], 0, size)


# --- checkpoints ------------------------------------------------------------------------------


def origin() -> str:
    configured: str = settings.LEDGER["ORIGIN"]
    return configured or f"{socket.gethostname()}/caspix"


def note_body(origin_line: str, size: int, root: bytes) -> str:
    """The C2SP checkpoint body: origin, tree size and base64 root, one per line."""
    return f"{origin_line}\n{size}\n{base64.b64encode(root).decode()}\n"


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id of an Ed25519 key: SHA-256(name ‖ "\\n" ‖ 0x01 ‖ key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]


def seal(*, force: bool = False) -> Checkpoint | None:
    """Sign a checkpoint of the current tree if one is due (or ``force``); returns it."""
    with transaction.atomic():
        _lock_ledger()
        size = head().size
        last = Checkpoint.objects.order_by("-size").first()
        if size == 0 or (last is not None and last.size == size):
            return None
        if not force and last is not None:
            config = settings.LEDGER
            young = timezone.now() - last.signed_at < timedelta(seconds=config["CHECKPOINT_SECONDS"])
            if young and size - last.size < config["CHECKPOINT_EVENTS"]:
                return None
        root = tree_root(size)
        if last is not None:
            # Never sign a tree that does not extend the last signed one.
            needed = merkle.nodes_needed_for_consistency(last.size, size)
            nodes = stored_nodes(needed)
            proof = merkle.consistency_proof(lambda level, index: nodes[(level, index)], last.size, size)
            merkle.verify_consistency(last.size, size, bytes(last.root), root, proof)
        name = origin()
        body = note_body(name, size, root)
        service = key_service()
        signature = service.sign(KeyName.LEDGER, body.encode())
        public = service.public_keys(KeyName.LEDGER)[signature.version]
        stamp = base64.b64encode(key_id(name, public) + signature.signature).decode()
        return Checkpoint.objects.create(
            size=size, root=root, note=f"{body}\n\u2014 {name} {stamp}\n", key_version=signature.version
        )


def published_keys() -> dict[str, Any]:
    """The ledger's public keys, every version, as verifiers and witnesses need them.

    ``vkey`` is the C2SP signed-note verifier key: ``<origin>+<hex key id>+<base64(0x01 ‖ key)>``.
    """
    name = origin()
    keys = []
    for version, public in sorted(key_service().public_keys(KeyName.LEDGER).items()):
        identifier = key_id(name, public)
        verifier = base64.b64encode(b"\x01" + public).decode()
        keys.append(
            {
                "version": version,
                "public_key": base64.b64encode(public).decode(),
                "key_id": identifier.hex(),
                "vkey": f"{name}+{identifier.hex()}+{verifier}",
            }
        )
    return {"origin": name, "algorithm": "Ed25519", "keys": keys}


def record_key_event(event: KeyEvent) -> None:
    """Record a key, rotation or backup event from :mod:`caspix.crypto.events`."""
    with transaction.atomic():
        record(
            EventType[event.kind],
            actor=Actor(None, f"{event.operator} (manage.py)", "operator"),
            object_type="key" if event.kind.startswith(("KEY", "DATA", "BLIND", "INDEX")) else "backup",
            object_id=event.subject,
            after=event.details,
        )
