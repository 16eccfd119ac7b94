"""Re-derive the ledger from its stored bytes and report the first damage.

What a full verification checks, streaming the events in sequence order:

1. the sequence starts at 1 and has no gap;
2. each body is a ledger event whose repeated columns agree with it (on PostgreSQL the database
   parses the bodies, on a connection of its own, while the hashes are checked here);
3. each leaf is SHA-256(0x00 ‖ body) and each chain link is SHA-256(previous link ‖ leaf), the
   first link following 32 zero bytes;
4. at every checkpoint's size, the RFC 9162 root of the events so far equals the checkpoint's
   root, and the checkpoint's note names that size and root and carries a valid Ed25519 signature
   of a ledger key version. Recomputing every root from the same events proves consecutive
   checkpoints consistent;
5. no checkpoint is larger than the ledger (a deleted tail);
6. every stored Merkle node (used for proofs) equals the recomputed one, level by level.

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
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, transaction

from audit import merkle
from audit.ledger import ZERO_CHAIN, key_id, note_body, parse, stored_nodes
from audit.models import Checkpoint, Event, TreeNode

BATCH = 5000


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
    report = Report()
    checkpoints = list(Checkpoint.objects.order_by("size"))
    if since is not None:
        checkpoints = [c for c in checkpoints if c.size >= since.size]
    tree, chain = _start(since, report)
    if report.damage:
        return report
    pending = iter(checkpoints)
    checkpoint = next(pending, None)
    if since is not None and checkpoint is not None and checkpoint.size == since.size:
        if not _check_checkpoint(checkpoint, tree, public_keys, report, since.size):
            return report
        report.checkpoints += 1
        report.last_checkpoint = since.size
        checkpoint = next(pending, None)
    previous = since.size if since is not None else 0
    columns = ColumnCheck(report.start)
    with columns:
        _stream(report, tree, chain, checkpoint, pending, public_keys, previous)
    if connection.vendor == "postgresql" and not columns.enforced:
        report.warnings.append(
            f"the constraint {COLUMNS_CONSTRAINT} no longer binds the columns to the bodies: every body was parsed "
            "instead; someone with the tables' ownership has changed the schema"
        )
    if columns.damage is not None:
        report.damage.append(columns.damage)
        report.damage.sort(key=lambda damage: damage.seq)
    return report


def _stream(
    report: Report,
    tree: CompactRange,
    chain: bytes,
    checkpoint: Checkpoint | None,
    pending: Iterator[Checkpoint],
    public_keys: dict[int, bytes],
    previous: int,
) -> None:
    """The hot loop: every event's leaf, link and Merkle nodes, and the checkpoints on the way."""
    sha256 = hashlib.sha256
    roots = tree.roots
    size = tree.size
    digests: list[hashlib._Hash] = [sha256()]  # per level ≥ 1, the nodes in index order
    target = checkpoint.size if checkpoint is not None else -1
    earlier: bytes | None = None  # the link before ``chain``, to recognise an inserted row
    for seq, body, leaf, link in _rows(report.start):
        expected = size + 1
        if seq != expected:
            kind = "missing" if seq > expected else "out of order"
            report.damage.append(Damage(expected, kind, f"expected event {expected}, found {seq}"))
            break
        if sha256(b"\x00" + body).digest() != leaf:
            report.damage.append(Damage(seq, "altered", "the body does not hash to the stored leaf"))
            break
        if sha256(chain + leaf).digest() != link:
            if earlier is not None and sha256(earlier + leaf).digest() == link:
                # This event follows the one before the previous: the previous one was slipped in.
                report.damage.append(Damage(seq - 1, "inserted", "the event does not belong to the chain it sits in"))
            else:
                report.damage.append(Damage(seq, "chain", "the chain link does not follow from the previous event"))
            break
        earlier, chain = chain, link
        value, index, level = leaf, size, 0
        while index & 1:
            value = sha256(b"\x01" + roots.pop() + value).digest()
            level += 1
            index >>= 1
            if level == len(digests):
                digests.append(sha256())
            digests[level].update(value)
        roots.append(value)
        size += 1
        if size == target:
            tree.size = size
            report.size = size
            while checkpoint is not None and checkpoint.size == size:
                if not _check_checkpoint(checkpoint, tree, public_keys, report, previous):
                    return
                report.checkpoints += 1
                report.last_checkpoint = previous = checkpoint.size
                checkpoint = next(pending, None)
            target = checkpoint.size if checkpoint is not None else -1
    tree.size = report.size = size
    if report.damage:
        return
    if checkpoint is not None:
        report.damage.append(
            Damage(size + 1, "missing", f"checkpoint {checkpoint.size} covers events the ledger no longer has")
        )
        return
    if report.start == 0:
        _check_nodes(size, {level: digest for level, digest in enumerate(digests) if level}, report)


def _select(query: str, params: list[Any] | None = None) -> Iterator[Any]:
    """Rows of ``query``, streamed: on PostgreSQL through a binary server-side cursor."""
    if connection.vendor == "postgresql":
        with transaction.atomic():
            raw: Any = connection.connection
            with raw.cursor(name="audit_verify", binary=True) as cursor:
                cursor.itersize = BATCH
                cursor.execute(query, params or [])
                yield from cursor
        return
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        for row in cursor.fetchall():
            yield tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)


def _rows(after: int) -> Iterator[tuple[int, bytes, bytes, bytes]]:
    """(seq, body, leaf, chain) in sequence order from ``after + 1``, streamed.

    On PostgreSQL a server-side binary cursor streams in large batches; elsewhere, keyset batches.
    """
    query = "SELECT seq, body, leaf, chain FROM audit_event WHERE seq > %s ORDER BY seq"
    if connection.vendor == "postgresql":
        yield from _select(query, [after])
        return
    last = after
    while True:
        with connection.cursor() as cursor:
            cursor.execute(query + f" LIMIT {BATCH}", [last])
            batch = cursor.fetchall()
        if not batch:
            return
        for seq, body, leaf, chain in batch:
            yield seq, bytes(body), bytes(leaf), bytes(chain)
        last = batch[-1][0]


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
    checkpoint: Checkpoint, tree: CompactRange, public_keys: dict[int, bytes], report: Report, previous: int
) -> bool:
    first = previous + 1
    problem = note_problem(checkpoint, public_keys)
    if problem is None and tree.root() != bytes(checkpoint.root):
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


def _check_nodes(size: int, computed: dict[int, hashlib._Hash], report: Report) -> None:
    stored: dict[int, hashlib._Hash] = {}
    counts: dict[int, int] = {}
    level, expected, digest = -1, 0, hashlib.sha256()
    for node_level, index, value in _select('SELECT level, "index", hash FROM audit_tree_node ORDER BY level, "index"'):
        if node_level != level:
            level, expected, digest = node_level, 0, hashlib.sha256()
            stored[level] = digest
        if index != expected:  # a gap or a stray node: the counts below will differ
            break
        digest.update(value)
        expected += 1
        counts[level] = expected
    for level in sorted(set(computed) | set(stored)):
        expected_count = size >> level
        if counts.get(level, 0) != expected_count or (
            level in computed and stored.get(level, hashlib.sha256()).digest() != computed[level].digest()
        ):
            report.damage.append(_first_bad_node(level, size))
            return


def _first_bad_node(level: int, size: int) -> Damage:
    """The first stored node of ``level`` that differs (a slow pass, only when damage was seen)."""
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
    return Damage(size + 1, "tree", f"level {level} holds nodes beyond the ledger")
