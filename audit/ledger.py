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
import logging
import math
import operator
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from audit import merkle
from audit.canonical import canonical, rfc3339
from audit.events import EventType
from audit.models import Checkpoint, Event, PendingEvent, TreeNode
from caspix.crypto.events import KeyEvent
from caspix.crypto.keys import KeyName, key_service
from caspix.requestcontext import client_address_var, request_id_var

logger = logging.getLogger(__name__)

FORMAT = 1
_LOCK_KEY = 0x6361737069786C67  # "caspixlg": the integrator's advisory lock
ZERO_CHAIN = bytes(32)
_INSERT_PENDING = "INSERT INTO audit_pending (body, recorded_at) VALUES (%s, %s)"
_COPY_PENDING = "COPY audit_pending (body, recorded_at) FROM STDIN (FORMAT BINARY)"


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
) -> bytes:
    """Record an event in the acting transaction (which must be open); returns its canonical
    body, the bytes the ledger stores and hashes.

    The source address and request id come from the request being served, if any. Sensitive
    values in ``before``/``after`` are refused (:class:`~audit.canonical.CanonicalError`).
    """
    db = connections[DEFAULT_DB_ALIAS]  # ``connection`` looks its thread's wrapper up at every use: once here
    if not db.in_atomic_block:
        raise RuntimeError("record() runs inside the action's transaction (transaction.atomic)")
    now = timezone.now()
    body = canonical(_document(Entry(event_type, object_type, object_id, reason, before, after), actor, now))
    _insert_pending(db, body, now)
    _integrate_on_commit(db)
    return body


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
    with connection.cursor() as cursor:  # sends the rows record() kept first: the order of the calls
        if connection.vendor == "postgresql":
            # COPY in binary: the bodies go as they are (an INSERT of a bytea array had psycopg
            # and the server escape and unescape every byte), in order (the identity column
            # numbers COPY's rows as they come)
            raw: Any = cursor.cursor  # psycopg's own cursor, under Django's wrapper
            with connection.wrap_database_errors, raw.copy(_COPY_PENDING) as copy:
                copy.set_types(["bytea", "timestamptz"])
                for body in bodies:
                    copy.write_row((body, now))
        else:
            cursor.executemany(
                "INSERT INTO audit_pending (body, recorded_at) VALUES (%s, %s)", [(b, now) for b in bodies]
            )
    _integrate_on_commit(connection)


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


def _integrate_on_commit(db: Any) -> None:
    """One request for integration per transaction: skip when one is registered that survives
    whatever may roll back from here (its savepoints are all still open around this point)."""
    if db.run_on_commit:
        open_savepoints = set(db.savepoint_ids)
        if any(item[1] is _schedule_integration and item[0] <= open_savepoints for item in db.run_on_commit):
            return
    db.on_commit(_schedule_integration, robust=True)


def _insert_pending(db: Any, body: bytes, now: datetime) -> None:
    """One statement rather than the ORM's insert: it runs in every audited action.

    On PostgreSQL, Caspix's database backend (:mod:`audit.backends.postgresql`) keeps the row with
    the connection and sends it in one round trip with the COMMIT, or before the transaction's
    next statement, as a statement prepared once per connection with the body bound as binary.
    It is sent at once, through Django's cursor wrapper and a prepared cursor kept with the
    connection, where that wrapper has work to do (query logging, execute wrappers: tests counting
    queries, a debug toolbar), as the transaction's first statement (psycopg opens the
    transaction), or on another backend. Elsewhere Django's wrapper would add nothing but the two
    checks made here. A tracer that patches ``CursorWrapper.execute`` itself does not see this
    statement; one installed as an execute wrapper does.
    """
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(_INSERT_PENDING, [body, now])
        return
    db.ensure_connection()
    keeps = getattr(db, "keeps_ledger_rows", False)
    if keeps and not (db.queries_logged or db.execute_wrappers):
        db.validate_no_broken_transaction()
        if db.connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            db.keep_ledger_row(body, now)
            return
    if keeps:
        db.send_ledger_rows()  # rows kept earlier in the transaction go first: the order of the calls
    kept = getattr(db, "_caspix_ledger_cursor", None)
    if kept is None or kept[0] is not db.connection:
        with db.wrap_database_errors:  # a closed connection raises Django's error, as elsewhere
            kept = (db.connection, _PreparedCursor(db.connection))
        db._caspix_ledger_cursor = kept
    wrapped = (db.make_debug_cursor if db.queries_logged else db.make_cursor)(kept[1])
    wrapped.execute(_INSERT_PENDING, [body, now])  # not closed: the cursor is kept


class _Scheduler:
    """Ask a worker to sequence newly committed events: across all processes, at most one task at
    once and one more at the end of each window of ``LEDGER["SCHEDULE_WINDOW"]`` seconds,
    instead of one task per transaction.

    The windows are the same for every process (wall-clock multiples of the window), and the
    processes share which requests are made through the cache (an atomic ``add`` of a key
    naming the window: only one process wins it). The first commit of a window asks for a run
    at once, so an event committed when the ledger is quiet is sequenced within milliseconds; a
    later one makes sure that a run is set for the window's end, which every commit of the
    window precedes. Each process remembers which window end is already set, and asks nothing
    more until then: under load, a web process touches the cache about twice a window, and the
    worker gets two runs a window, each sequencing everything committed meanwhile.

    Publishing costs a broker round trip (about 0.4 ms, as much as a small action) and each task
    a worker's turn (over a millisecond, the same for one event or a thousand): one task per
    transaction, or even per process and window, would cost more than the events themselves.
    Every event is still sequenced by the end of the window it commits in, plus the worker's
    delay. A task the broker loses, a clock far enough off to run a window's task early, or a
    cache that cannot be reached (then every commit asks at once) are made up by the beat's run
    every few seconds.
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace  # of the cache keys; by default, the database's
        self.set_until = 0.0  # a run is set for this time (``time.time()``): earlier commits need none

    def __call__(self) -> None:
        if settings.LEDGER["INTEGRATE"] == "inline":
            integrate_all()
            return
        now = time.time()
        if now < self.set_until:
            return
        window = settings.LEDGER["SCHEDULE_WINDOW"]
        ends = (math.floor(now / window) + 1) * window
        try:
            first = cache.add(self._key("now", ends), 1, timeout=_KEY_SECONDS)
            last = not first and cache.add(self._key("end", ends), 1, timeout=_KEY_SECONDS)
        except Exception:  # the cache out of reach: ask at once, as without it
            logger.warning("the cache cannot be reached: sequencing is asked for at every commit")
            _publish(None)
            return
        if first:
            _publish(None)
            return
        if last:
            _publish(max(ends - time.time(), 0.0))
        self.set_until = ends

    def _key(self, which: str, ends: float) -> str:
        """The cache key of a window's request. It names the ledger's database: another
        deployment, or another test database, may share the cache."""
        if self.namespace is None:
            database = connections[DEFAULT_DB_ALIAS].settings_dict
            named = "|".join(str(database.get(name, "")) for name in ("HOST", "PORT", "NAME"))
            self.namespace = hashlib.sha256(named.encode()).hexdigest()[:16]
        return f"audit:integrate:{self.namespace}:{which}:{round(ends * 1000)}"


_KEY_SECONDS = 60


def _publish(countdown: float | None) -> None:
    from audit.tasks import integrate_ledger

    integrate_ledger.apply_async(kwargs={"seal_when_idle": False}, countdown=countdown, expires=60)  # type: ignore[arg-type]


_scheduler = _Scheduler()


def _schedule_integration() -> None:
    """What a recording transaction runs once it commits (a function: Django names it in its log
    should it fail)."""
    _scheduler()


def integrate_all(*, seal_when_idle: bool = True) -> int:
    """Sequence every pending event, then sign a checkpoint if one is due; returns how many.

    The batch that empties the queue checks the checkpoint in its own transaction. A run asked
    for by a commit whose events another run has sequenced already finds nothing pending, and
    then (``seal_when_idle=False``) stops there: that other run checked the checkpoint, and the
    beat's run checks it on the clock.
    """
    total = 0
    while True:
        moved = integrate(BATCH, then_seal=True)
        total += moved
        if moved < BATCH:
            break
    if not moved and (total or seal_when_idle):
        seal()
    return total


# --- integration -------------------------------------------------------------------------------

BATCH = 1000


@dataclass(frozen=True)
class Head:
    size: int
    chain: bytes


def head() -> Head:
    last = Event.objects.order_by("-seq").values_list("seq", "chain").first()
    return Head(0, ZERO_CHAIN) if last is None else Head(last[0], bytes(last[1]))


@dataclass(frozen=True)
class _Frontier:
    """The roots of the perfect subtrees of the tree at ``head``, as this process last computed
    them: what the next batch builds on. Valid only while the ledger's head is exactly ``head``
    (its size and chain link: the link commits to every leaf in order, so to the whole tree)."""

    head: Head
    nodes: dict[tuple[int, int], bytes]


_frontier_kept: _Frontier | None = None


def _lock_ledger() -> None:
    """One integrator or sealer at a time, until the transaction ends (SQLite serialises writers).

    A statement of its own: a statement that read the ledger while it waited for the lock would
    read it as it was before the lock was granted."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def integrate(batch_size: int = BATCH, *, then_seal: bool = False) -> int:
    """Sequence up to ``batch_size`` committed pending events; returns how many.

    With ``then_seal``, a batch that leaves nothing pending (it took fewer than ``batch_size``)
    also signs a checkpoint when one is due, in the same transaction. If signing fails, the batch
    is committed all the same, and the failure is raised after it.
    """
    if not PendingEvent.objects.exists():  # the common answer for a redundant run, without the lock
        return 0
    with transaction.atomic():
        _lock_ledger()
        if connection.vendor == "postgresql":
            moved, failure = _integrate_postgresql(batch_size, then_seal)
        else:
            moved, failure = _integrate_sqlite(batch_size, then_seal)
    if failure is not None:
        raise failure
    return moved


def _integrate_sqlite(batch_size: int, then_seal: bool) -> tuple[int, Exception | None]:
    pending = list(PendingEvent.objects.order_by("id")[:batch_size])
    if not pending:
        return 0, None
    current = head()
    leaves = [merkle.leaf_hash(bytes(item.body)) for item in pending]
    chains, nodes, known = _link(current, leaves)
    now = timezone.now()
    Event.objects.bulk_create(
        _event(current.size + offset + 1, bytes(item.body), leaves[offset], chains[offset], now)
        for offset, item in enumerate(pending)
    )
    TreeNode.objects.bulk_create(TreeNode(level=level, index=index, hash=value) for level, index, value in nodes)
    PendingEvent.objects.filter(pk__in=[item.pk for item in pending]).delete()
    failure = None
    if then_seal and len(pending) < batch_size:
        last = Checkpoint.objects.order_by("-size").first()
        failure = _seal_after_batch(current.size + len(pending), last, known)
    return len(pending), failure


def _link(
    current: Head, leaves: list[bytes]
) -> tuple[list[bytes], list[tuple[int, int, bytes]], dict[tuple[int, int], bytes]]:
    """The chain links of ``leaves`` appended after ``current``, the Merkle nodes they complete,
    and every node known meanwhile (the new tree's frontier among them)."""
    global _frontier_kept
    kept = _frontier_kept
    known = dict(kept.nodes) if kept is not None and kept.head == current else _frontier(current.size)
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
    size = current.size + len(leaves)
    # Kept even if the transaction rolls back: it names the head it belongs to, which is then not
    # the ledger's, and the next batch reads the frontier from the database again.
    _frontier_kept = _Frontier(
        Head(size, chain), {node: known[node] for node in merkle.nodes_needed_for_subtree(0, size)}
    )
    return chains, nodes, known


# PostgreSQL hashes the leaves and reads the repeated columns out of the bodies itself (the same
# expressions its CHECK constraint holds them to): the bodies never travel to Python and back.
# One statement reads the batch, the head and the last checkpoint; one moves the batch and
# stores its tree nodes: a batch is six round trips, whatever its size.
_PENDING_LEAVES = """
SELECT 0, p.id, sha256(decode('00', 'hex') || p.body), NULL::timestamptz
FROM (SELECT id, body FROM audit_pending ORDER BY id LIMIT %s) AS p
UNION ALL (SELECT 1, seq, chain, NULL FROM audit_event ORDER BY seq DESC LIMIT 1)
UNION ALL (SELECT 2, size, root, signed_at FROM audit_checkpoint ORDER BY size DESC LIMIT 1)
"""
_MOVE_PENDING = """
WITH moved AS (
    DELETE FROM audit_pending AS p
    USING unnest(%s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[]) AS v(id, seq, leaf, chain)
    WHERE p.id = v.id
    RETURNING v.seq, p.body, v.leaf, v.chain, convert_from(p.body, 'UTF8')::jsonb AS d
), nodes AS (
    INSERT INTO audit_tree_node (level, index, hash)
    SELECT * FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[])
)
INSERT INTO audit_event
    (seq, body, leaf, chain, integrated_at, event_type, occurred_at, actor_id, object_type, object_id)
SELECT seq, body, leaf, chain, now(), (d->>'type')::integer, (d->>'time')::timestamptz,
       (d->'actor'->>'id')::bigint, d->'object'->>'type', d->'object'->>'id'
FROM moved
"""


@dataclass(frozen=True)
class _LastCheckpoint:
    """What deciding on the next checkpoint needs of the last one."""

    size: int
    root: bytes
    signed_at: datetime


def _integrate_postgresql(batch_size: int, then_seal: bool) -> tuple[int, Exception | None]:
    with connection.cursor() as cursor:
        cursor.execute(_PENDING_LEAVES, [batch_size])
        pending: list[tuple[int, bytes]] = []
        current, last = Head(0, ZERO_CHAIN), None
        for kind, number, value, signed_at in cursor.fetchall():
            if kind == 0:
                pending.append((number, bytes(value)))
            elif kind == 1:
                current = Head(number, bytes(value))
            else:
                last = _LastCheckpoint(number, bytes(value), signed_at)
        if not pending:
            return 0, None
        pending.sort()  # the statement's order is the union's; the ids give the order recorded
        ids = [item[0] for item in pending]
        leaves = [item[1] for item in pending]
        chains, nodes, known = _link(current, leaves)
        seqs = list(range(current.size + 1, current.size + len(pending) + 1))
        levels, indexes, hashes = [n[0] for n in nodes], [n[1] for n in nodes], [n[2] for n in nodes]
        cursor.execute(_MOVE_PENDING, [ids, seqs, leaves, chains, levels, indexes, hashes])
        if cursor.rowcount != len(pending):
            raise RuntimeError(f"moved {cursor.rowcount} pending events of {len(pending)}: the batch changed")
    failure = None
    if then_seal and len(pending) < batch_size:
        failure = _seal_after_batch(current.size + len(pending), last, known)
    return len(pending), failure


def _seal_after_batch(
    size: int, last: Checkpoint | _LastCheckpoint | None, known: dict[tuple[int, int], bytes]
) -> Exception | None:
    """Sign a checkpoint if one is due, in the batch's transaction (in a savepoint of its own);
    returns what failed, if anything.

    A failure (the key service out of reach, a stored tree that does not extend the last
    checkpoint) must not undo the batch: the caller raises it once the batch is committed, and
    the task fails as a failing ``seal()`` made it fail.
    """
    try:
        with transaction.atomic():
            _seal_locked(size, last, known, force=False)
    except Exception as failure:  # raised by integrate(), after the batch commits
        return failure
    return None


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
        return _seal_locked(head().size, Checkpoint.objects.order_by("-size").first(), None, force=force)


def _seal_locked(
    size: int, last: Checkpoint | _LastCheckpoint | None, known: dict[tuple[int, int], bytes] | None, *, force: bool
) -> Checkpoint | None:
    """Sign a checkpoint of the tree of ``size`` leaves if one is due, the ledger being locked;
    ``known`` holds nodes the caller computed (the frontier of ``size`` among them), or None."""
    if size == 0 or (last is not None and last.size == size):
        return None
    if not force and last is not None:
        config = settings.LEDGER
        young = timezone.now() - last.signed_at < timedelta(seconds=config["CHECKPOINT_SECONDS"])
        if young and size - last.size < config["CHECKPOINT_EVENTS"]:
            return None
    root = tree_root(size) if known is None else merkle.subtree_root(lambda level, index: known[level, index], 0, size)
    if last is not None:
        # Never sign a tree that does not extend the last signed one (the proof is read from
        # the stored nodes: the root above, if computed here, is checked against them).
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
