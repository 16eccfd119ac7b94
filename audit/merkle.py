"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing for the audit ledger.

Standard library only, no Django: an auditor can read, copy or re-implement this file alone.

Hashes
    Every hash is a raw 32-byte SHA-256 digest (never hex, never base64 inside this module).

    * leaf hash:    ``SHA-256(0x00 || data)``, where ``data`` is the leaf's bytes as the ledger defines them;
    * node hash:    ``SHA-256(0x01 || left || right)`` over two 32-byte child hashes;
    * empty tree:   ``SHA-256("")`` (:data:`EMPTY_ROOT`).

    The 0x00 / 0x01 prefixes keep a leaf from ever being passed off as an interior node.

Tree shape (RFC 9162 section 2.1.1)
    The Merkle Tree Hash of ``n`` leaf hashes ``D[0:n]`` is ``MTH({}) = SHA-256("")``,
    ``MTH({d}) = d`` (the leaf hash itself) and, for ``n > 1``, with ``k`` the largest power of two
    smaller than ``n``: ``MTH(D[0:n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``. The split is at ``k``,
    not at the midpoint: for ``n = 5`` the left subtree holds four leaves and the right one one.

Node store
    Proofs are generated from stored hashes of *perfect* subtrees, never from the whole leaf list.
    Node ``(level, index)`` is the hash of the perfect subtree of ``2**level`` leaves starting at leaf
    ``index * 2**level``: level 0 are the leaf hashes, ``(1, 0)`` is ``node_hash(leaf0, leaf1)``,
    ``(2, 1)`` covers leaves 4..7. The hash of the tree of any size ``n`` is rebuilt from the
    ``popcount(n)`` perfect subtrees the binary form of ``n`` names, left to right, combined from
    the right: for ``n = 7``, ``node_hash((2, 0), node_hash((1, 2), (0, 6)))``. When leaf ``i`` is
    appended it completes the nodes :func:`perfect_nodes_completed_by` lists, lowest level first;
    node ``(level, j)`` is ``node_hash((level - 1, 2j), (level - 1, 2j + 1))``.

    A store is any callable ``get(level, index) -> bytes``. The ``nodes_needed_*`` functions name
    exactly the nodes a computation will ask for, so a caller can fetch them in one query and pass
    ``node_getter(fetched)``.

Inclusion proof (RFC 9162 section 2.1.3)
    ``PATH(m, D[n])``: the sibling hashes on the way from leaf ``m`` up to the root, the leaf's own
    sibling first, the root's child last. At most ``ceil(log2(n))`` hashes; empty for ``n = 1``.

Consistency proof (RFC 9162 section 2.1.4)
    ``PROOF(m, D[n]) = SUBPROOF(m, D[n], true)``, the hashes that let a verifier rebuild both
    ``MTH(D[0:m])`` and ``MTH(D[0:n])``, deepest first. When ``m`` is a power of two the old root
    itself is a node of the new tree and is *not* sent: the verifier puts it in front. The proof
    from ``m`` to ``m`` is empty, and so is the proof from the empty tree (``m = 0``) to any tree:
    the verifier then only checks that the old root is :data:`EMPTY_ROOT`.

Verification
    :func:`verify_inclusion` and :func:`verify_consistency` follow the algorithms of RFC 9162
    sections 2.1.3.2 and 2.1.4.2 step by step, including the checks that the proof is used up
    exactly and the second tree size consumed entirely (``sn == 0``). They return ``None`` or raise
    :class:`ProofError` saying which check failed; there is no boolean to forget to test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

HASH_SIZE = 32
"""Bytes in every hash: leaf, node, root and proof element."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""MTH({}): the root of the tree with no leaves."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

Node: TypeAlias = tuple[int, int]
"""``(level, index)``: the perfect subtree of ``2**level`` leaves starting at leaf ``index * 2**level``."""

NodeGetter: TypeAlias = Callable[[int, int], bytes]
"""A node store: ``get(level, index)`` returns the 32-byte hash of that perfect subtree."""

_Range: TypeAlias = tuple[int, int]


class ProofError(ValueError):
    """A proof, or the claim it comes with, does not verify; the message names the failed check."""


# --- hashing -----------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right) over two 32-byte child hashes."""
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise ValueError(f"node children are {len(left)} and {len(right)} bytes; both must be {HASH_SIZE}")
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of *leaf hashes* (not leaf data), in O(n) hashing and without recursion.

    Pairing each level left to right and carrying an unpaired last node up unchanged builds
    exactly the RFC 9162 tree (the split at the largest power of two).
    """
    for position, value in enumerate(leaf_hashes):
        if len(value) != HASH_SIZE:
            raise ValueError(f"leaf hash {position} is {len(value)} bytes; must be {HASH_SIZE}")
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# --- the node store ----------------------------------------------------------------------------


def node_getter(nodes: Mapping[Node, bytes]) -> NodeGetter:
    """A store reading from hashes fetched beforehand, keyed by ``(level, index)``."""

    def get(level: int, index: int) -> bytes:
        try:
            return nodes[(level, index)]
        except KeyError:
            raise LookupError(f"node ({level}, {index}) was not fetched") from None

    return get


def perfect_nodes_completed_by(index: int) -> list[Node]:
    """The nodes of level >= 1 that appending leaf ``index`` completes, lowest level first.

    Leaf 3 completes ``(1, 1)`` (leaves 2-3) and ``(2, 0)`` (leaves 0-3); an even leaf completes none.
    Each is ``node_hash((level - 1, 2j), (level - 1, 2j + 1))``, whose right child is the node listed
    just before it (or the new leaf).
    """
    if index < 0:
        raise ValueError(f"leaf index {index} is negative")
    completed: list[Node] = []
    level = 1
    while (index + 1) % (1 << level) == 0:
        completed.append((level, index >> level))
        level += 1
    return completed


def _largest_power_of_two_below(n: int) -> int:
    """k of RFC 9162: the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_subtree_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise ValueError(f"leaf range [{start}, {end}) is not a range")
    if start and end > start and (start & -start) < end - start:
        raise ValueError(
            f"leaf range [{start}, {end}) is not a subtree of any RFC 9162 tree: it must start at a multiple "
            f"of a power of two at least as large as its {end - start} leaves"
        )


def _range_nodes(start: int, end: int) -> list[Node]:
    """The maximal aligned perfect subtrees making up ``[start, end)``, left to right."""
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def _fetch(get: NodeGetter, node: Node) -> bytes:
    value = get(*node)
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"node store returned {value!r} for node {node}; every hash is {HASH_SIZE} bytes")
    return value


def _range_root(get: NodeGetter, start: int, end: int) -> bytes:
    if start == end:
        return EMPTY_ROOT
    hashes = [_fetch(get, node) for node in _range_nodes(start, end)]
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def subtree_root(get: NodeGetter, start: int, end: int) -> bytes:
    """MTH of leaves ``[start, end)`` from ``popcount(end - start)`` stored perfect subtrees.

    ``subtree_root(get, 0, n)`` is the root of the tree of size ``n``. Any other range must be a
    subtree of some RFC 9162 tree (``start`` a multiple of a power of two >= ``end - start``), as
    every range a proof names is; an empty range has the empty root.
    """
    _check_subtree_range(start, end)
    return _range_root(get, start, end)


def nodes_needed_for_subtree(start: int, end: int) -> set[Node]:
    """Exactly the nodes :func:`subtree_root` asks the store for."""
    _check_subtree_range(start, end)
    return set(_range_nodes(start, end))


# --- proofs ------------------------------------------------------------------------------------


def _check_inclusion_claim(index: int, size: int) -> None:
    if index < 0 or index >= size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")


def _inclusion_ranges(index: int, size: int) -> list[_Range]:
    """The leaf ranges whose MTHs make PATH(index, D[size]), in proof order (deepest first)."""
    ranges: list[_Range] = []
    start, end = 0, size
    while end - start > 1:
        split = start + _largest_power_of_two_below(end - start)
        if index < split:  # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((split, end))
            end = split
        else:  # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((start, split))
            start = split
    ranges.reverse()
    return ranges


def inclusion_proof(get: NodeGetter, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 section 2.1.3.1), read from the node store."""
    _check_inclusion_claim(index, size)
    return [_range_root(get, start, end) for start, end in _inclusion_ranges(index, size)]


def nodes_needed_for_inclusion(index: int, size: int) -> set[Node]:
    """Exactly the nodes :func:`inclusion_proof` asks the store for (O(log n) of them)."""
    _check_inclusion_claim(index, size)
    return {node for start, end in _inclusion_ranges(index, size) for node in _range_nodes(start, end)}


def _check_consistency_claim(old_size: int, new_size: int) -> None:
    if old_size < 0 or new_size < old_size:
        raise ValueError(f"no consistency proof from tree size {old_size} to tree size {new_size}")


def _consistency_ranges(old_size: int, new_size: int) -> list[_Range]:
    """The leaf ranges whose MTHs make PROOF(old_size, D[new_size]), in proof order (deepest first)."""
    if old_size in (0, new_size):
        return []
    ranges: list[_Range] = []
    start, end, whole_old_tree = 0, new_size, True  # SUBPROOF(old_size - start, D[start:end], whole_old_tree)
    while old_size != end:
        split = start + _largest_power_of_two_below(end - start)
        if old_size <= split:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((split, end))
            end = split
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((start, split))
            start = split
            whole_old_tree = False
    if not whole_old_tree:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def consistency_proof(get: NodeGetter, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) (RFC 9162 section 2.1.4.1), read from the node store.

    Empty when the sizes are equal or the old tree is empty.
    """
    _check_consistency_claim(old_size, new_size)
    return [_range_root(get, start, end) for start, end in _consistency_ranges(old_size, new_size)]


def nodes_needed_for_consistency(old_size: int, new_size: int) -> set[Node]:
    """Exactly the nodes :func:`consistency_proof` asks the store for (O(log n) of them)."""
    _check_consistency_claim(old_size, new_size)
    return {node for start, end in _consistency_ranges(old_size, new_size) for node in _range_nodes(start, end)}


# --- verification ------------------------------------------------------------------------------


def _checked_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise ProofError(f"{what} is a {type(value).__name__}, not bytes")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes; every hash is {HASH_SIZE} bytes")
    return value


def _checked_proof(proof: Sequence[bytes]) -> list[bytes]:
    sequence: object = proof
    if isinstance(sequence, bytes | bytearray | str):
        raise ProofError("the proof must be a sequence of hashes, not a single string of bytes")
    return [_checked_hash(value, f"proof[{position}]") for position, value in enumerate(proof)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` (a 32-byte *leaf hash*) is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 section 2.1.3.2. Raises :class:`ProofError` on any failure; returns ``None`` otherwise.
    """
    leaf = _checked_hash(leaf, "the leaf hash")
    root = _checked_hash(root, "the root")
    path = _checked_proof(proof)
    claim = f"leaf {index} of a tree of size {size}"
    # 1. Compare leaf_index against tree_size.
    if index < 0 or index >= size:
        raise ProofError(f"there is no {claim}")
    # 2.-3. fn and sn walk the leaf's and the last leaf's positions up the tree; r is the running hash.
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        # 4a. Past the root with hashes left over.
        if sn == 0:
            raise ProofError(
                f"proof for {claim} has {len(path)} hashes, more than the {len(_inclusion_ranges(index, size))} "
                "the tree has levels for"
            )
        # 4b. A left sibling, or fn is the last node of its level (right edge of an imperfect tree).
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # 4c.
        fn >>= 1
        sn >>= 1
    # 5. The whole tree size must have been walked, and the result must be the root.
    if sn != 0:
        raise ProofError(
            f"proof for {claim} has {len(path)} hashes, fewer than the {len(_inclusion_ranges(index, size))} "
            "needed to reach the root"
        )
    if r != root:
        raise ProofError(f"proof for {claim} leads to root {r.hex()}, not {root.hex()}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``new_size`` leaves with ``new_root`` extends the one of ``old_size`` with ``old_root``.

    RFC 9162 section 2.1.4.2, plus the two cases it leaves to the caller: equal sizes (empty proof,
    equal roots) and the empty old tree (empty proof, old root :data:`EMPTY_ROOT`). Raises
    :class:`ProofError` on any failure; returns ``None`` otherwise.
    """
    old_root = _checked_hash(old_root, "the old root")
    new_root = _checked_hash(new_root, "the new root")
    path = _checked_proof(proof)
    claim = f"tree size {old_size} to tree size {new_size}"
    if old_size < 0 or new_size < old_size:
        raise ProofError(f"there is no consistency from {claim}: a log only grows")
    if old_size == new_size:
        if path:
            raise ProofError(f"the proof from {claim} must be empty; it has {len(path)} hashes")
        if old_root != new_root:
            raise ProofError(f"two different roots for tree size {old_size}: {old_root.hex()} and {new_root.hex()}")
        return
    if old_size == 0:
        if path:
            raise ProofError(f"the proof from {claim} must be empty; it has {len(path)} hashes")
        if old_root != EMPTY_ROOT:
            raise ProofError(f"the root of the empty tree is {EMPTY_ROOT.hex()}, not {old_root.hex()}")
        return
    expected = len(_consistency_ranges(old_size, new_size))
    # 1. An empty path proves nothing between two different non-empty sizes.
    if not path:
        raise ProofError(f"the proof from {claim} is empty; it needs {expected} hashes")
    # 2. When the old tree is perfect its root is a node of the new tree, left out of the proof.
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    # 3.-4. Start fn and sn at the last leaf of each tree and skip the levels where fn is a right child.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr rebuilds the old root, sr the new one.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        # 6a. Past the new root with hashes left over.
        if sn == 0:
            raise ProofError(f"the proof from {claim} has {len(proof)} hashes, more than the {expected} it needs")
        # 6b.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        # 6c.
        fn >>= 1
        sn >>= 1
    # 7. The second tree size must be consumed entirely, and both roots rebuilt.
    if sn != 0:
        raise ProofError(
            f"the proof from {claim} has {len(proof)} hashes, fewer than the {expected} needed to reach "
            f"the root of size {new_size}"
        )
    if fr != old_root:
        raise ProofError(f"the proof from {claim} leads to old root {fr.hex()}, not {old_root.hex()}")
    if sr != new_root:
        raise ProofError(f"the proof from {claim} leads to new root {sr.hex()}, not {new_root.hex()}")
