"""Re-derive the ledger from its stored bytes and report the first damage.

What a full verification checks, walking the events in sequence order:

1. the sequence starts at 1 and has no gap;
2. each body is a ledger event whose repeated columns agree with it (on PostgreSQL a validated
   constraint binds them at every insert, and the verifier checks the constraint still refuses a
   mismatch; without it the database parses every body);
3. each leaf is SHA-256(0x00 ‖ body) and each chain link is SHA-256(previous link ‖ leaf), the
   first link following 32 zero bytes;
4. at every checkpoint's size, the RFC 9162 root of the events so far equals the checkpoint's
   root, and the checkpoint's note names that size and root and carries a valid Ed25519 signature
   of a ledger key version. Recomputing every root from the same events proves consecutive
   checkpoints consistent;
5. no checkpoint is larger than the ledger (a deleted tail);
6. every stored Merkle node (used for proofs) equals the recomputed one, level by level.

On PostgreSQL the run reads one exported repeatable-read snapshot. The hashing is
``audit.walk``'s; from :data:`SPLIT_FROM` events on, a second process walks the second half in
the same snapshot from the link and subtrees stored at the split, which the first walk must
arrive at, while a thread digests the stored nodes (``docs/LEDGER.md``).

An incremental verification starts from the last checkpoint a previous run verified, taking the
chain link and the perfect subtrees at that size from the database, and checks them against that
checkpoint's root before going on.

The first bad sequence number is the first event that is missing, altered or out of place. When
only a signed checkpoint catches the damage (a rewrite with recomputed hashes, a forged
checkpoint), it is the first event that checkpoint vouches for beyond the previous one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Max

from audit import merkle, walk
from audit.ledger import ZERO_CHAIN, key_id, note_body, parse, stored_nodes
from audit.models import Checkpoint, Event, TreeNode

BATCH = 5000
#: From this many events on, a second process walks the second half: below, starting it costs more
#: than it saves.
SPLIT_FROM = 200_000


@dataclass(frozen=True)
class Damage:
    seq: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.kind}: {self.detail}"


@dataclass
class Report:
    size: int = 0
    start: int = 0
    checkpoints: int = 0
    last_checkpoint: int | None = None
    walkers: int = 1
    damage: list[Damage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.damage

    @property
    def first_bad_seq(self) -> int | None:
        return min((d.seq for d in self.damage), default=None)

    def as_dict(self) -> dict[str, object]:
        return {
            "intact": self.intact,
            "events_verified": self.size - self.start,
            "size": self.size,
            "checkpoints_verified": self.checkpoints,
            "last_checkpoint": self.last_checkpoint,
            "first_bad_seq": self.first_bad_seq,
            "walkers": self.walkers,
            "damage": [{"seq": d.seq, "kind": d.kind, "detail": d.detail} for d in self.damage],
            "warnings": self.warnings,
        }


class CompactRange:
    """The perfect-subtree roots of a growing tree: appending is O(1) amortised."""

    def __init__(self, size: int = 0, roots: list[bytes] | None = None) -> None:
        self.size = size
        self.roots = roots or []  # largest subtree first, as in the size's binary digits
        self.completed: list[tuple[int, int, bytes]] = []  # (level, index, hash), level ≥ 1

    def append(self, leaf: bytes) -> None:
        index = self.size
        value = leaf
        level = 0
        while index >> level & 1:
            value = merkle.node_hash(self.roots.pop(), value)
            level += 1
            self.completed.append((level, index >> level, value))
        self.roots.append(value)
        self.size += 1

    def root(self) -> bytes:
        if not self.roots:
            return merkle.EMPTY_ROOT
        value = self.roots[-1]
        for left in reversed(self.roots[:-1]):
            value = merkle.node_hash(left, value)
        return value


def verify(*, since: Checkpoint | None = None, public_keys: dict[int, bytes] | None = None) -> Report:
    """Verify the whole ledger, or what follows the checkpoint ``since`` (incremental)."""
    if public_keys is None:
        from caspix.crypto.keys import KeyName, key_service

        public_keys = key_service().public_keys(KeyName.LEDGER)
    with _snapshot() as snapshot:
        return _verify(since, public_keys, snapshot)


@contextlib.contextmanager
def _snapshot() -> Iterator[str | None]:
    """On PostgreSQL outside a transaction, one repeatable-read snapshot for the whole run.

    Exported, so that the second walker and the stored-node reader see exactly the same ledger
    while integration goes on. Inside the caller's transaction (it may hold uncommitted events)
    or on SQLite, everything runs on the caller's connection and nothing is exported.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield None
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SELECT pg_export_snapshot()")
        yield cursor.fetchone()[0]


def _verify(since: Checkpoint | None, public_keys: dict[int, bytes], snapshot: str | None) -> Report:
    report = Report()
    pending = list(Checkpoint.objects.order_by("size"))
    if since is not None:
        pending = [c for c in pending if c.size >= since.size]
    tree, chain = _start(since, report)
    if report.damage:
        return report
    if since is not None and pending and pending[0].size == since.size:
        if not _check_checkpoint(pending.pop(0), tree.root(), public_keys, report, since.size):
            return report
        report.checkpoints += 1
        report.last_checkpoint = since.size
    start = report.start
    end = max(start, Event.objects.aggregate(end=Max("seq"))["end"] or 0)
    stops = [checkpoint.size for checkpoint in pending]
    split = _split(start, end) if snapshot is not None else None
    second = None
    if snapshot is not None and split is not None:
        try:
            second = _SecondWalker(snapshot, split, end, stops)
        except LookupError:  # no stored link or subtree to start from: one walk finds what is wrong
            split = None
    first = walk.Walk(start, chain, list(tree.roots), stops=[size for size in stops if size <= (split or end)])
    nodes = _StoredNodes(snapshot, end, split) if start == 0 else None
    try:
        columns = ColumnCheck(start)
        with columns, _event_cursor() as cursor:
            walk.walk_rows(first, cursor, split or end)
        walks = [first.result()] if second is None else [first.result(), second.result()]
    finally:
        if second is not None:
            second.stop()
        if nodes is not None:
            nodes.join()
    report.walkers = len(walks)
    _judge(report, walks, pending, public_keys, since.size if since is not None else 0)
    if not report.damage and nodes is not None:
        _check_nodes(end, split, walks, nodes, report)
    if connection.vendor == "postgresql" and not columns.enforced:
        report.warnings.append(
            f"the constraint {COLUMNS_CONSTRAINT} no longer binds the columns to the bodies: every body was parsed "
            "instead; someone with the tables' ownership has changed the schema"
        )
    if columns.damage is not None:
        report.damage.append(columns.damage)
        report.damage.sort(key=lambda damage: damage.seq)
    return report


@contextlib.contextmanager
def _event_cursor() -> Iterator[Any]:
    """A cursor for the events: on PostgreSQL a plain psycopg one (Django's binds parameters on the
    client, which cannot ask for binary results), so that the bodies arrive as they are stored."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    import psycopg

    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.format = psycopg.pq.Format.BINARY
        yield cursor


def _split(start: int, end: int) -> int | None:
    """Where the second walker starts, or None when the ledger is too short to be worth it."""
    if end - start < SPLIT_FROM:
        return None
    middle = start + (end - start) * 13 // 25  # a little past half: the second walker starts later
    alignment = 1 << max(0, ((end - start) // 64).bit_length() - 1)  # large whole subtrees on both sides
    return max(start + 1, middle - middle % alignment)


def _judge(
    report: Report, walks: list[walk.Walked], pending: list[Checkpoint], keys: dict[int, bytes], previous: int
) -> None:
    """The first damage the walks and the checkpoints on their way show, in sequence order."""
    checkpoints = iter(pending)
    checkpoint = next(checkpoints, None)
    for number, walked in enumerate(walks):
        while checkpoint is not None and checkpoint.size in walked.roots_at:
            if not _check_checkpoint(checkpoint, walked.roots_at[checkpoint.size], keys, report, previous):
                return
            report.checkpoints += 1
            report.last_checkpoint = previous = checkpoint.size
            checkpoint = next(checkpoints, None)
        report.size = walked.size
        if walked.damage is not None:
            report.damage.append(Damage(*walked.damage))
            return
        if number + 1 < len(walks) and (walked.chain, walked.roots) != walks[number + 1].start:
            # The next walk started from stored subtrees this one did not arrive at.
            report.damage.append(_bad_subtree(walked.size, walked.roots, walks[number + 1].start[1]))
            return
    if checkpoint is not None:
        report.damage.append(
            Damage(report.size + 1, "missing", f"checkpoint {checkpoint.size} covers events the ledger no longer has")
        )


COLUMNS_CONSTRAINT = "audit_event_columns_match_body"
#: One probe per repeated column: an event whose column disagrees with its body.
_PROBES = ("event_type", "occurred_at", "actor_id", "object_type", "object_id")


def constraint_enforced() -> bool:
    """Whether PostgreSQL still binds the repeated columns to the bodies (migration 0004).

    The constraint must exist, be validated (a constraint re-added NOT VALID would not cover the
    rows already there) and refuse, in a savepoint rolled back at once, an event that disagrees
    with its body on each column in turn.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT convalidated FROM pg_constraint WHERE conname = %s AND conrelid = 'audit_event'::regclass",
            [COLUMNS_CONSTRAINT],
        )
        row = cursor.fetchone()
    if row is None or not row[0]:
        return False
    body = b'{"actor":{"id":1,"name":"probe","role":"system"},"object":{"id":"1","type":"probe"},'
    body += b'"time":"2000-01-01T00:00:00.000000Z","type":1,"v":1}'
    right: dict[str, Any] = {
        "event_type": 1,
        "occurred_at": "2000-01-01T00:00:00Z",
        "actor_id": 1,
        "object_type": "probe",
    }
    right["object_id"] = "1"
    wrong: dict[str, Any] = {"event_type": 2, "occurred_at": "2000-01-01T00:00:01Z", "actor_id": 2, "object_type": "x"}
    wrong["object_id"] = "2"
    for column in _PROBES:
        values = {**right, column: wrong[column]}
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO audit_event (seq, body, leaf, chain, integrated_at, event_type, occurred_at,"
                    " actor_id, object_type, object_id) VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s)",
                    [2**62, body, bytes(32), bytes(32), *[values[name] for name in _PROBES]],
                )
                transaction.set_rollback(True)
        except IntegrityError:
            continue
        return False
    return True


class ColumnCheck:
    """That each event's repeated columns agree with its body, and the body is a ledger event.

    On PostgreSQL the database parses the bodies in one query: on a connection of its own, while
    the hashes are checked here, when everything is committed; on the caller's connection after
    the hashes when the caller is inside a transaction (it may hold uncommitted events). Elsewhere
    the events are read again and parsed in Python.
    """

    SQL = """
        SELECT e.seq FROM audit_event e, LATERAL (SELECT convert_from(e.body, 'UTF8')::jsonb AS b) j
        WHERE e.seq > %s AND (
            e.event_type IS DISTINCT FROM (j.b->>'type')::integer
            OR e.actor_id IS DISTINCT FROM (j.b->'actor'->>'id')::bigint
            OR e.object_type IS DISTINCT FROM j.b->'object'->>'type'
            OR e.object_id IS DISTINCT FROM j.b->'object'->>'id'
            OR e.occurred_at IS DISTINCT FROM (j.b->>'time')::timestamptz
            OR j.b->>'v' IS DISTINCT FROM '1'
        )
        ORDER BY e.seq LIMIT 1
    """

    def __init__(self, after: int) -> None:
        self.after = after
        self.enforced = False
        self.damage: Damage | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ColumnCheck:
        self.enforced = connection.vendor == "postgresql" and constraint_enforced()
        if self.enforced:
            return self  # the database refused every row whose columns disagree with its body
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._in_own_connection, name="audit-verify-columns")
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.enforced:
            return
        if self._thread is not None:
            self._thread.join()
        elif connection.vendor == "postgresql":
            self._in_database(connection)
        else:
            self._in_python()

    def _in_own_connection(self) -> None:
        database = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            self._in_database(database)
        finally:
            database.close()

    def _in_database(self, database: Any) -> None:
        try:
            # On the caller's connection, a savepoint: a failed cast must not abort its transaction.
            savepoint = transaction.atomic() if database is connection else _nothing()
            with savepoint, database.cursor() as cursor:
                cursor.execute(self.SQL, [self.after])
                row = cursor.fetchone()
        except DatabaseError:  # a body that is not JSON: find it the slow way
            self._in_python()
            return
        if row is not None:
            self.damage = Damage(row[0], "altered", "the repeated columns disagree with the body")

    def _in_python(self) -> None:
        for event in _events(self.after):
            damage = _check_columns(event)
            if damage is not None:
                self.damage = damage
                return


def _start(since: Checkpoint | None, report: Report) -> tuple[CompactRange, bytes]:
    if since is None:
        return CompactRange(), ZERO_CHAIN
    size = since.size
    needed = merkle.nodes_needed_for_subtree(0, size)
    nodes = stored_nodes(needed)
    roots = [nodes[key] for key in sorted(needed, key=lambda key: key[1] << key[0])]
    tree = CompactRange(size, roots)
    report.start = report.size = size
    if tree.root() != bytes(since.root):
        report.damage.append(Damage(1, "tree", f"the stored tree at size {size} no longer has the checkpoint's root"))
    chain = Event.objects.filter(seq=size).values_list("chain", flat=True).first()
    if chain is None:
        report.damage.append(Damage(size, "missing", f"event {size} of the last verified checkpoint is gone"))
        return tree, ZERO_CHAIN
    return tree, bytes(chain)


def _events(after: int) -> Iterator[Event]:
    """Events in sequence order from ``after + 1``, streamed in batches by keyset."""
    last = after
    while True:
        batch = list(Event.objects.filter(seq__gt=last).order_by("seq")[:BATCH])
        if not batch:
            return
        yield from batch
        last = batch[-1].seq


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def _check_columns(event: Event) -> Damage | None:
    try:
        fields = parse(bytes(event.body))
    except (ValueError, KeyError, TypeError):
        return Damage(event.seq, "altered", "the body is not a ledger event")
    stored = (event.event_type, event.occurred_at, event.actor_id, event.object_type, event.object_id)
    if stored != (fields.event_type, fields.occurred_at, fields.actor_id, fields.object_type, fields.object_id):
        return Damage(event.seq, "altered", "the repeated columns disagree with the body")
    return None


def _check_checkpoint(
    checkpoint: Checkpoint, root: bytes, public_keys: dict[int, bytes], report: Report, previous: int
) -> bool:
    first = previous + 1
    problem = note_problem(checkpoint, public_keys)
    if problem is None and root != bytes(checkpoint.root):
        problem = "the events do not have the signed root"
    if problem is not None:
        report.damage.append(Damage(first, "checkpoint", f"checkpoint {checkpoint.size}: {problem}"))
        return False
    return True


def note_problem(checkpoint: Checkpoint, public_keys: dict[int, bytes]) -> str | None:
    """What is wrong with a checkpoint's signed note, or None when it verifies."""
    body, separator, signature_line = checkpoint.note.partition("\n\n")
    if not separator:
        return "the note has no signature"
    body += "\n"
    lines = body.split("\n")
    if len(lines) != 4 or note_body(lines[0], checkpoint.size, bytes(checkpoint.root)) != body:
        return "the note does not name the checkpoint's size and root"
    name = lines[0]
    parts = signature_line.rstrip("\n").split(" ")
    if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != name:
        return "the signature line is malformed"
    try:
        blob = base64.b64decode(parts[2], validate=True)
    except ValueError:
        return "the signature is not base64"
    for raw in public_keys.values():
        if key_id(name, raw) == blob[:4]:
            try:
                Ed25519PublicKey.from_public_bytes(raw).verify(blob[4:], body.encode())
            except (InvalidSignature, ValueError):
                return "the signature does not verify"
            return None
    return "no ledger key has the signature's key id"


def _check_nodes(end: int, split: int | None, walks: list[walk.Walked], stored: _StoredNodes, report: Report) -> None:
    """Every stored Merkle node equals the one the walks computed, level by level; none is extra."""
    suspect = [] if stored.bad_level is None else [stored.bad_level]
    for level in range(1, end.bit_length()):
        if [each.digests.get(level, EMPTY_LEVEL) for each in walks] != stored.digests.get(level):
            suspect.append(level)
    for level in sorted(suspect):  # the exact comparison decides
        damage = _first_bad_node(level, end)
        if damage is not None:
            report.damage.append(damage)
            return


EMPTY_LEVEL = hashlib.sha256(b"").digest()
NODE_CHUNK = 65536  # stored nodes fetched at once, as one string of 32-byte hashes


class _StoredNodes(threading.Thread):
    """Digest the stored Merkle nodes, per level, in a thread while the events are walked.

    Each level's nodes arrive as strings of 32-byte hashes (``string_agg`` over the primary key in
    index order, a chunk at a time, from a connection in the verifier's snapshot): no row objects,
    and hashing a large string releases the interpreter's lock. A missing, extra or altered node
    changes the digest; a node beyond the ledger's tree shows as a level's highest index. With a
    second walker, each level is digested in two parts, cut where that walker's nodes begin. A
    level whose digest differs is compared node by node (:func:`_first_bad_node`), which decides.
    """

    def __init__(self, snapshot: str | None, end: int, split: int | None) -> None:
        super().__init__(name="audit-verify-nodes")
        self.snapshot, self.end, self.split = snapshot, end, split
        self.digests: dict[int, list[bytes]] = {}
        self.bad_level: int | None = None  # a level holding a node beyond the ledger's tree
        self.error: BaseException | None = None
        if snapshot is None:
            self.run()
        else:
            self.start()

    def join(self, timeout: float | None = None) -> None:
        if self.snapshot is not None:
            super().join(timeout)
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        try:
            if self.snapshot is None:
                with connection.cursor() as cursor:
                    self._read(cursor)
            else:
                with _in_snapshot(self.snapshot) as database, database.cursor(binary=True) as cursor:
                    cursor.execute("SET LOCAL enable_sort = off")  # walk the primary key in its order
                    self._read(cursor)
        except BaseException as error:  # handed to the verifying thread in join()
            self.error = error

    def _read(self, cursor: Any) -> None:
        height = max(self.end.bit_length() - 1, 0)
        cursor.execute("SELECT min(level) FROM audit_tree_node WHERE level > %s", [height])
        self.bad_level = cursor.fetchone()[0]
        for level in range(1, height + 1):
            cursor.execute('SELECT max("index") FROM audit_tree_node WHERE level = %s', [level])
            if cursor.fetchone()[0] not in (None, (self.end >> level) - 1):
                self.bad_level = level
        if self.bad_level is not None:
            return
        for level in range(1, height + 1):
            count = self.end >> level
            cuts = [0, count] if self.split is None else [0, self.split >> level, count]
            self.digests[level] = [self._digest(cursor, level, lo, hi) for lo, hi in itertools.pairwise(cuts)]

    @staticmethod
    def _digest(cursor: Any, level: int, lo: int, hi: int) -> bytes:
        digest = hashlib.sha256()
        for first in range(lo, hi, NODE_CHUNK):
            last = min(first + NODE_CHUNK, hi)
            if connection.vendor == "postgresql":
                cursor.execute(  # in the subquery's order: PostgreSQL 15 sorts again for an ORDER BY in the call
                    "SELECT string_agg(hash, '') FROM (SELECT hash FROM audit_tree_node"
                    ' WHERE level = %s AND "index" >= %s AND "index" < %s ORDER BY level, "index") AS nodes',
                    [level, first, last],
                )
                digest.update(cursor.fetchone()[0] or b"")
            else:
                cursor.execute(
                    'SELECT hash FROM audit_tree_node WHERE level = %s AND "index" >= %s AND "index" < %s'
                    ' ORDER BY "index"',
                    [level, first, last],
                )
                digest.update(b"".join(bytes(row[0]) for row in cursor.fetchall()))
        return digest.digest()


@contextlib.contextmanager
def _in_snapshot(snapshot: str) -> Iterator[Any]:
    """A connection of its own, in the verifier's exported snapshot."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(_conninfo(), autocommit=True) as database:
        database.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        database.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        yield database
        database.execute("COMMIT")


def _conninfo() -> str:
    """The libpq connection string of the default database, from Django's own parameters."""
    from psycopg import conninfo, pq

    known = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    params = connection.get_connection_params()
    return conninfo.make_conninfo("", **{k: v for k, v in params.items() if k in known and isinstance(v, (str, int))})


class _SecondWalker:
    """``python -m audit.walk`` walking (split, end] in the verifier's snapshot, on the other core.

    It starts from the chain link and the perfect subtrees stored at ``split``; the first walk
    must arrive at exactly those (:func:`_judge`). The job, with the connection string, goes
    through a pipe, never the command line.
    """

    def __init__(self, snapshot: str, split: int, end: int, stops: list[int]) -> None:
        needed = merkle.nodes_needed_for_subtree(0, split)
        nodes = stored_nodes(needed)
        roots = [nodes[key] for key in sorted(needed, key=lambda key: key[1] << key[0])]
        links = dict(Event.objects.filter(seq__in=(split - 1, split)).values_list("seq", "chain"))
        chain = bytes(links[split])
        earlier = bytes(links[split - 1]) if split > 1 else None  # to recognise an event slipped in at the split
        job = {
            "conninfo": _conninfo(),
            "snapshot": snapshot,
            "start": split,
            "end": end,
            "chain": chain.hex(),
            "earlier": earlier.hex() if earlier is not None else None,
            "roots": [root.hex() for root in roots],
            "stops": [size for size in stops if split < size <= end],
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audit.walk"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=settings.BASE_DIR,
        )
        with self.process.stdin or io.BytesIO() as pipe:  # always a pipe: stdin=PIPE
            pipe.write(json.dumps(job).encode())
        self.process.stdin = None  # closed: communicate() must not flush it

    def result(self) -> walk.Walked:
        output, errors = self.process.communicate()
        if self.process.returncode:
            raise RuntimeError(f"the second ledger walker failed: {errors.decode(errors='replace')[-2000:]}")
        return walk.Walked.from_json(json.loads(output))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _bad_subtree(size: int, computed: list[bytes], stored: list[bytes]) -> Damage:
    """Damage at the first leaf of the first perfect subtree at ``size`` stored other than computed."""
    first = 0
    for bit in reversed(range(size.bit_length())):
        if not size >> bit & 1:
            continue
        if not computed or not stored or computed.pop(0) != stored.pop(0):
            return Damage(first + 1, "tree", f"the stored tree at size {size} differs from the events")
        first += 1 << bit
    return Damage(first + 1, "tree", f"the stored tree at size {size} differs from the events")


def _first_bad_node(level: int, size: int) -> Damage | None:
    """The first stored node of ``level`` that differs, or one beyond the ledger's tree, or None.

    A slow pass, node by node, run when the digests of a level differ: it is what decides."""
    tree = CompactRange()
    wanted: dict[int, bytes] = {}
    for event in _events(0):
        tree.append(bytes(event.leaf))
        for node_level, index, value in tree.completed:
            if node_level == level:
                wanted[index] = value
        tree.completed.clear()
    stored = dict(TreeNode.objects.filter(level=level).values_list("index", "hash"))
    for index in range(size >> level):
        if index not in stored or bytes(stored[index]) != wanted.get(index):
            first = index * (1 << level) + 1
            return Damage(first, "tree", f"the stored Merkle node ({level}, {index}) differs from the events")
    if any(index >= size >> level for index in stored):
        return Damage(size + 1, "tree", f"level {level} holds nodes beyond the ledger")
    return None
