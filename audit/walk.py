"""Walk the ledger's events in sequence order, re-deriving every hash, in batches.

Standard library only (and psycopg when run as a process), no Django: ``audit.verify`` walks the
first part of the ledger in its own process while ``python -m audit.walk`` walks the rest on the
other core, in the same database snapshot, from the chain link and the perfect subtrees stored
at the split. The verifier then checks that its walk ended on exactly that link and those
subtrees, so the second walk stands on verified ground.

A walk checks, for each event: its sequence number follows the previous one; its leaf is
SHA-256(0x00 ‖ body); its link is SHA-256(previous link ‖ leaf). It grows the RFC 9162 tree and
keeps, for each level, a digest of every node it completed, concatenated in index order, for the
verifier to compare with the stored nodes digested the same way. It records the root at each
size it is told to stop at (the checkpoints), for the verifier to compare with the signed roots.

A batch is first checked whole (list comprehensions, one comparison per column); a batch that
fails is walked again event by event, to name the first bad event and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Stored = tuple[bytes, bytes, bytes]  # body, leaf, link
Row = tuple[int, bytes, bytes, bytes]  # seq, body, leaf, link

EMPTY_ROOT = hashlib.sha256(b"").digest()


@dataclass
class Walk:
    """The state of a walk: where it stands, what it completed, the first damage it met."""

    size: int
    chain: bytes
    roots: list[bytes]  # the perfect subtrees of the tree so far, largest first
    stops: list[int] = field(default_factory=list)  # sizes to record the root at, ascending
    roots_at: dict[int, bytes] = field(default_factory=dict)
    damage: tuple[int, str, str] | None = None
    earlier: bytes | None = None  # the link before ``chain``, to recognise an inserted row
    _digests: dict[int, Any] = field(default_factory=dict)  # level ≥ 1 → hashlib object

    def __post_init__(self) -> None:
        self.stops = sorted(stop for stop in self.stops if stop > self.size)
        self.start = (self.chain, list(self.roots))

    def feed(self, rows: Sequence[Stored]) -> bool:
        """Walk the events that follow, as (body, leaf, link) rows; False once damage is found."""
        if self.damage is not None:
            return False
        if not rows:
            return True
        sha256 = hashlib.sha256
        computed = [sha256(b"\x00" + body).digest() for body, _, _ in rows]
        chained: list[bytes] = []
        append = chained.append
        chain = self.chain
        for leaf in computed:
            chain = sha256(chain + leaf).digest()
            append(chain)
        if computed != [leaf for _, leaf, _ in rows] or chained != [link for _, _, link in rows]:
            return self.feed_numbered([(self.size + n, *row) for n, row in enumerate(rows, 1)])
        self.earlier = chained[-2] if len(chained) > 1 else self.chain
        self.chain = chain
        self._grow(computed)
        return True

    def feed_numbered(self, rows: Sequence[Row]) -> bool:
        """Walk (seq, body, leaf, link) rows one by one, naming the first bad event and its fault."""
        sha256 = hashlib.sha256
        for seq, body, leaf, link in rows:
            expected = self.size + 1
            if seq != expected:
                kind = "missing" if seq > expected else "out of order"
                self.damage = (expected, kind, f"expected event {expected}, found {seq}")
            elif sha256(b"\x00" + body).digest() != leaf:
                self.damage = (seq, "altered", "the body does not hash to the stored leaf")
            elif sha256(self.chain + leaf).digest() != link:
                if self.earlier is not None and sha256(self.earlier + leaf).digest() == link:
                    # This event follows the one before the previous: the previous one was slipped in.
                    self.damage = (seq - 1, "inserted", "the event does not belong to the chain it sits in")
                else:
                    self.damage = (seq, "chain", "the chain link does not follow from the previous event")
            if self.damage is not None:
                return False
            self.earlier, self.chain = self.chain, link
            self._grow([leaf])
        return True

    def _grow(self, leaves: list[bytes]) -> None:
        """Append ``leaves`` as perfect subtrees aligned on the tree, never across a stop."""
        sha256 = hashlib.sha256
        position = 0
        while position < len(leaves):
            room = len(leaves) - position
            if self.stops:
                room = min(room, self.stops[0] - self.size)
            height = room.bit_length() - 1
            if self.size:
                height = min(height, (self.size & -self.size).bit_length() - 1)
            nodes = leaves[position : position + (1 << height)]
            position += len(nodes)
            for level in range(1, height + 1):
                pairs = iter(nodes)
                nodes = [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=True)]
                self._digest(level).update(b"".join(nodes))
            value, index, level = nodes[0], self.size >> height, height
            while index & 1:
                value = sha256(b"\x01" + self.roots.pop() + value).digest()
                level += 1
                index >>= 1
                self._digest(level).update(value)
            self.roots.append(value)
            self.size += 1 << height
            if self.stops and self.size == self.stops[0]:
                self.roots_at[self.stops.pop(0)] = self.root()

    def _digest(self, level: int) -> Any:
        digest = self._digests.get(level)
        if digest is None:
            digest = self._digests[level] = hashlib.sha256()
        return digest

    def root(self) -> bytes:
        if not self.roots:
            return EMPTY_ROOT
        value = self.roots[-1]
        for left in reversed(self.roots[:-1]):
            value = hashlib.sha256(b"\x01" + left + value).digest()
        return value

    def result(self) -> Walked:
        digests = {level: digest.digest() for level, digest in self._digests.items()}
        return Walked(self.start, self.size, self.chain, self.roots, self.roots_at, digests, self.damage)


@dataclass(frozen=True)
class Walked:
    """What a walk found: where it started and ended, the roots at its stops, its first damage.

    ``digests`` holds, per level, the SHA-256 of the nodes the walk completed, concatenated.
    """

    start: tuple[bytes, list[bytes]]  # the chain link and perfect subtrees it started from
    size: int
    chain: bytes
    roots: list[bytes]
    roots_at: dict[int, bytes]
    digests: dict[int, bytes]
    damage: tuple[int, str, str] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "start": [self.start[0].hex(), [root.hex() for root in self.start[1]]],
            "size": self.size,
            "chain": self.chain.hex(),
            "roots": [root.hex() for root in self.roots],
            "roots_at": {str(size): root.hex() for size, root in self.roots_at.items()},
            "digests": {str(level): digest.hex() for level, digest in self.digests.items()},
            "damage": self.damage,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Walked:
        return cls(
            start=(bytes.fromhex(data["start"][0]), [bytes.fromhex(root) for root in data["start"][1]]),
            size=data["size"],
            chain=bytes.fromhex(data["chain"]),
            roots=[bytes.fromhex(root) for root in data["roots"]],
            roots_at={int(size): bytes.fromhex(root) for size, root in data["roots_at"].items()},
            digests={int(level): bytes.fromhex(digest) for level, digest in data["digests"].items()},
            damage=tuple(data["damage"]) if data["damage"] else None,
        )


BATCH = 16384
STORED = "SELECT body, leaf, chain FROM audit_event WHERE seq > %s AND seq <= %s ORDER BY seq"
NUMBERED = "SELECT seq, body, leaf, chain FROM audit_event WHERE seq > %s AND seq <= %s ORDER BY seq"


def walk_rows(walk: Walk, cursor: Any, end: int, batch: int = BATCH) -> None:
    """Walk the events after ``walk.size`` up to ``end`` with a DB-API cursor, in keyset batches.

    Sequence numbers are unique, so a range holding as many rows as numbers has no gap: the
    numbers themselves are fetched only for a range that does not (to name what is missing).
    """
    first = walk.size
    while first < end and walk.damage is None:
        last = min(first + batch, end)
        cursor.execute(STORED, [first, last])
        rows = cursor.fetchall()
        if len(rows) == last - first:
            walk.feed(rows if isinstance(rows[0][0], bytes) else [(bytes(b), bytes(f), bytes(k)) for b, f, k in rows])
        else:
            cursor.execute(NUMBERED, [first, last])
            walk.feed_numbered([(seq, *map(bytes, stored)) for seq, *stored in cursor.fetchall()])
            if walk.damage is None:  # the rows ended early: the next one is missing
                walk.damage = (walk.size + 1, "missing", f"expected event {walk.size + 1}, found none up to {last}")
        first = last


def _main() -> None:
    """``python -m audit.walk``: walk a range in an exported snapshot; JSON in on stdin, out on stdout."""
    import psycopg
    from psycopg import sql

    job = json.load(sys.stdin)
    walk = Walk(
        size=job["start"],
        chain=bytes.fromhex(job["chain"]),
        roots=[bytes.fromhex(value) for value in job["roots"]],
        stops=job["stops"],
        earlier=bytes.fromhex(job["earlier"]) if job["earlier"] else None,
    )
    with psycopg.connect(job["conninfo"], autocommit=True) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        connection.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(job["snapshot"])))
        with connection.cursor(binary=True) as cursor:
            walk_rows(walk, cursor, job["end"])
        connection.execute("COMMIT")
    json.dump(walk.result().as_json(), sys.stdout)


if __name__ == "__main__":
    _main()
