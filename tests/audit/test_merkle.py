"""RFC 9162 Merkle hashing: roots and proofs read from a node store, verifiers that reject every probe.

Everything is checked against a reference written in this file straight from RFC 9162 section 2.1,
over the leaf *data*, sharing no code with ``audit.merkle``. No database.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_getter,
    node_hash,
    nodes_needed_for_consistency,
    nodes_needed_for_inclusion,
    nodes_needed_for_subtree,
    perfect_nodes_completed_by,
    root,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)

Node: TypeAlias = tuple[int, int]
Store: TypeAlias = dict[Node, bytes]
Term: TypeAlias = "str | tuple[Term, Term]"
InclusionClaim: TypeAlias = tuple[bytes, int, int, list[bytes], bytes]
ConsistencyClaim: TypeAlias = tuple[int, int, bytes, bytes, list[bytes]]

MAX_SIZE = 70
DATA = tuple(f"caspix audit event {i}".encode() for i in range(MAX_SIZE))

# The RFC 6962 test leaves and the tree heads of sizes 0..8 (transparency-dev/merkle testonly).
CT_DATA = tuple(
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
)
CT_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
CT_PROOFS = {
    ("inclusion", 0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ("inclusion", 5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    ("consistency", 2, 8): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
}
SOME_HASH = hashlib.sha256(b"not in any tree").digest()


# --- the reference: RFC 9162 section 2.1, read literally ----------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(data: Sequence[bytes]) -> bytes:
    if not data:
        return sha256(b"")
    if len(data) == 1:
        return sha256(b"\x00" + data[0])
    k = split(len(data))
    return sha256(b"\x01" + mth(data[:k]) + mth(data[k:]))


def path(m: int, data: Sequence[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = split(len(data))
    if m < k:
        return [*path(m, data[:k]), mth(data[k:])]
    return [*path(m - k, data[k:]), mth(data[:k])]


def subproof(m: int, data: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if b else [mth(data)]
    k = split(n)
    if m <= k:
        return [*subproof(m, data[:k], b), mth(data[k:])]
    return [*subproof(m - k, data[k:], False), mth(data[:k])]


def proof(m: int, data: Sequence[bytes]) -> list[bytes]:
    return subproof(m, data, True)


def store_for(data: Sequence[bytes]) -> Store:
    """Every perfect subtree inside the tree of ``data``, keyed (level, index), as the ledger stores them."""
    store = {(0, i): sha256(b"\x00" + d) for i, d in enumerate(data)}
    level = 1
    while len(data) >> level:
        for j in range(len(data) >> level):
            store[(level, j)] = sha256(b"\x01" + store[(level - 1, 2 * j)] + store[(level - 1, 2 * j + 1)])
        level += 1
    return store


class Recorder:
    """A node store that remembers every node it was asked for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[Node] = []

    def __call__(self, level: int, index: int) -> bytes:
        self.calls.append((level, index))
        return self.store[(level, index)]


# What a verifier *can* tell apart. The root does not commit to the tree size on its own (the signed
# checkpoint does): leaf 0 of the tree of 3 and leaf 0 of a tree of 4 both hash as (((leaf, p0), p1)),
# and nothing in 32 opaque bytes says whether p1 is a leaf or a node. These terms, built from the
# RFC recursion, say which claims compute the same thing, so a changed size is expected to be
# rejected exactly when the computation differs.


def inclusion_shape(index: int, size: int) -> tuple[str, ...]:
    """The side of each sibling on the way up from the leaf."""
    if size == 1:
        return ()
    k = split(size)
    if index < k:
        return (*inclusion_shape(index, k), "sibling on the right")
    return (*inclusion_shape(index - k, size - k), "sibling on the left")


def subproof_ranges(m: int, start: int, end: int, b: bool) -> list[tuple[int, int]]:
    if m == end - start:
        return [] if b else [(start, end)]
    k = split(end - start)
    if m <= k:
        return [*subproof_ranges(m, start, start + k, b), (start + k, end)]
    return [*subproof_ranges(m - k, start + k, end, False), (start, start + k)]


def consistency_terms(old: int, new: int) -> tuple[Term, Term]:
    """Both roots as terms over the proof's hashes ("p0", "p1", ...) and the old root ("old")."""
    atoms: dict[tuple[int, int], Term] = {r: f"p{j}" for j, r in enumerate(subproof_ranges(old, 0, new, True))}
    if old & (old - 1) == 0:
        atoms[(0, old)] = "old"

    def term(start: int, end: int) -> Term:
        if (start, end) in atoms:
            return atoms[(start, end)]
        k = split(end - start)
        return (term(start, start + k), term(start + k, end))

    return term(0, old), term(0, new)


def substitute(term: Term, atom: str, value: Term) -> Term:
    if isinstance(term, str):
        return value if term == atom else term
    return (substitute(term[0], atom, value), substitute(term[1], atom, value))


def inclusion_indistinguishable(honest: tuple[int, int], index: int, size: int) -> bool:
    return 0 <= index < size and inclusion_shape(index, size) == inclusion_shape(*honest)


def consistency_indistinguishable(honest: tuple[int, int], old: int, new: int) -> bool:
    if not 0 < old < new:
        return False
    honest_old, honest_new = consistency_terms(*honest)
    claimed_old, claimed_new = consistency_terms(old, new)
    return (
        len(subproof_ranges(old, 0, new, True)) == len(subproof_ranges(honest[0], 0, honest[1], True))
        and substitute(claimed_old, "old", honest_old) == honest_old
        and substitute(claimed_new, "old", honest_old) == honest_new
    )


# --- helpers ------------------------------------------------------------------------------------


def flipped(value: bytes, bit: int) -> bytes:
    mutable = bytearray(value)
    mutable[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutable)


def inclusion_accepts(claim: InclusionClaim) -> bool:
    try:
        verify_inclusion(*claim)
    except ProofError:
        return False
    return True


def consistency_accepts(claim: ConsistencyClaim) -> bool:
    try:
        verify_consistency(*claim)
    except ProofError:
        return False
    return True


def honest_inclusion(index: int, size: int) -> InclusionClaim:
    return leaf_hash(DATA[index]), index, size, path(index, DATA[:size]), mth(DATA[:size])


def honest_consistency(old: int, new: int) -> ConsistencyClaim:
    return old, new, mth(DATA[:old]), mth(DATA[:new]), proof(old, DATA[:new])


# --- hashing and roots --------------------------------------------------------------------------


def test_it_hashes_leaves_and_nodes_with_their_prefixes() -> None:
    assert EMPTY_ROOT == CT_ROOTS[0] == sha256(b"")
    assert leaf_hash(b"") == CT_ROOTS[1] == sha256(b"\x00")
    assert node_hash(b"a" * 32, b"b" * 32) == sha256(b"\x01" + b"a" * 32 + b"b" * 32)


@pytest.mark.parametrize("size", range(len(CT_DATA) + 1))
def test_it_matches_the_published_certificate_transparency_roots(size: int) -> None:
    assert mth(CT_DATA[:size]) == CT_ROOTS[size]
    assert root([leaf_hash(d) for d in CT_DATA[:size]]) == CT_ROOTS[size]
    assert subtree_root(node_getter(store_for(CT_DATA[:size])), 0, size) == CT_ROOTS[size]


@pytest.mark.parametrize(("kind", "first", "size"), list(CT_PROOFS))
def test_it_matches_the_published_certificate_transparency_proofs(kind: str, first: int, size: int) -> None:
    get = node_getter(store_for(CT_DATA))
    expected = [bytes.fromhex(h) for h in CT_PROOFS[(kind, first, size)]]
    if kind == "inclusion":
        assert inclusion_proof(get, first, size) == expected
        verify_inclusion(leaf_hash(CT_DATA[first]), first, size, expected, CT_ROOTS[size])
    else:
        assert consistency_proof(get, first, size) == expected
        verify_consistency(first, size, CT_ROOTS[first], CT_ROOTS[size], expected)


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_it_computes_the_root_of_every_size_like_the_reference(size: int) -> None:
    data = DATA[:size]
    store = store_for(data)
    get = Recorder(store)
    assert root([leaf_hash(d) for d in data]) == mth(data)
    assert subtree_root(get, 0, size) == mth(data)
    assert set(get.calls) == nodes_needed_for_subtree(0, size)
    assert len(get.calls) == size.bit_count()
    # Every range a proof can name: a subtree of some RFC 9162 tree, inside this one.
    for start in range(size):
        for end in range(start + 1, size + 1):
            if start == 0 or (start & -start) >= end - start:
                get.calls.clear()
                assert subtree_root(get, start, end) == mth(data[start:end])
                assert set(get.calls) == nodes_needed_for_subtree(start, end)


def test_it_refuses_ranges_that_are_no_subtree() -> None:
    get = node_getter(store_for(DATA[:8]))
    for start, end in [(1, 3), (2, 5), (4, 9), (3, 2), (-1, 2)]:
        with pytest.raises(ValueError, match=r"leaf range"):
            subtree_root(get, start, end)
        with pytest.raises(ValueError, match=r"leaf range"):
            nodes_needed_for_subtree(start, end)


def test_it_refuses_hashes_of_the_wrong_length_when_hashing() -> None:
    with pytest.raises(ValueError, match="leaf hash 1 is 31 bytes"):
        root([b"a" * 32, b"b" * 31])
    with pytest.raises(ValueError, match="33"):
        node_hash(b"a" * 32, b"b" * 33)


def test_it_refuses_a_store_that_returns_something_else_than_a_hash() -> None:
    store = store_for(DATA[:4])
    store[(1, 1)] = store[(1, 1)][:31]
    with pytest.raises(ValueError, match=r"node store returned .* for node \(1, 1\)"):
        inclusion_proof(node_getter(store), 0, 4)


def test_it_names_the_node_that_was_not_fetched() -> None:
    get = node_getter({(0, 0): leaf_hash(b"x")})
    with pytest.raises(LookupError, match=r"node \(0, 1\) was not fetched"):
        inclusion_proof(get, 0, 2)


# --- the node store the ledger keeps --------------------------------------------------------------


def test_it_lists_the_nodes_an_append_completes() -> None:
    assert perfect_nodes_completed_by(0) == []
    assert perfect_nodes_completed_by(1) == [(1, 0)]
    assert perfect_nodes_completed_by(3) == [(1, 1), (2, 0)]
    assert perfect_nodes_completed_by(6) == []
    assert perfect_nodes_completed_by(7) == [(1, 3), (2, 1), (3, 0)]
    assert perfect_nodes_completed_by(11) == [(1, 5), (2, 2)]
    with pytest.raises(ValueError, match="negative"):
        perfect_nodes_completed_by(-1)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 33, MAX_SIZE])
def test_it_completes_every_perfect_subtree_once_when_appending_one_by_one(size: int) -> None:
    store: Store = {}
    completed: list[Node] = []
    for index, data in enumerate(DATA[:size]):
        store[(0, index)] = leaf_hash(data)
        for level, j in perfect_nodes_completed_by(index):
            store[(level, j)] = node_hash(store[(level - 1, 2 * j)], store[(level - 1, 2 * j + 1)])
            completed.append((level, j))
    assert len(completed) == len(set(completed))
    assert set(completed) == {node for node in store_for(DATA[:size]) if node[0] >= 1}
    assert store == store_for(DATA[:size])


# --- inclusion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_it_proves_every_leaf_of_every_tree_from_the_store(size: int) -> None:
    store = store_for(DATA[:size])
    expected_root = mth(DATA[:size])
    for index in range(size):
        get = Recorder(store)
        generated = inclusion_proof(get, index, size)
        assert generated == path(index, DATA[:size])
        verify_inclusion(leaf_hash(DATA[index]), index, size, generated, expected_root)
        assert set(get.calls) == nodes_needed_for_inclusion(index, size)
        assert len(get.calls) == len(set(get.calls))
        assert len(generated) <= math.ceil(math.log2(size))


@pytest.mark.parametrize("claim", [(-1, 3), (3, 3), (4, 3), (0, 0)])
def test_it_generates_no_inclusion_proof_for_a_leaf_outside_the_tree(claim: tuple[int, int]) -> None:
    get = node_getter(store_for(DATA[:3]))
    with pytest.raises(ValueError, match="is not in a tree of size"):
        inclusion_proof(get, *claim)
    with pytest.raises(ValueError, match="is not in a tree of size"):
        nodes_needed_for_inclusion(*claim)


def inclusion_probes(index: int, size: int, every_bit: bool) -> Iterator[tuple[str, InclusionClaim]]:
    leaf, _, _, honest, tree_root = honest_inclusion(index, size)
    bits = range(256) if every_bit else range(0, 256, 9)
    for position, value in enumerate(honest):
        for bit in bits:
            mutated = [*honest]
            mutated[position] = flipped(value, bit)
            yield f"proof[{position}] bit {bit} flipped", (leaf, index, size, mutated, tree_root)
    for bit in bits:
        yield f"root bit {bit} flipped", (leaf, index, size, honest, flipped(tree_root, bit))
        yield f"leaf bit {bit} flipped", (flipped(leaf, bit), index, size, honest, tree_root)
    if honest:
        yield "last hash dropped", (leaf, index, size, honest[:-1], tree_root)
        yield "first hash dropped", (leaf, index, size, honest[1:], tree_root)
        yield "empty proof", (leaf, index, size, [], tree_root)
        yield "a foreign hash in place of the first", (leaf, index, size, [SOME_HASH, *honest[1:]], tree_root)
        yield "a hash inserted", (leaf, index, size, [honest[0], SOME_HASH, *honest[1:]], tree_root)
    if len(honest) > 1:
        yield "hashes reversed", (leaf, index, size, honest[::-1], tree_root)
    yield "the root appended", (leaf, index, size, [*honest, tree_root], tree_root)
    yield "garbage appended", (leaf, index, size, [*honest, SOME_HASH], tree_root)
    yield "the root prepended", (leaf, index, size, [tree_root, *honest], tree_root)
    yield "the leaf prepended", (leaf, index, size, [leaf, *honest], tree_root)
    yield "the empty root", (leaf, index, size, honest, EMPTY_ROOT)
    yield "the leaf hashed twice", (leaf_hash(leaf), index, size, honest, tree_root)
    yield "a leaf hash 31 bytes long", (leaf[:31], index, size, honest, tree_root)
    yield "a root 33 bytes long", (leaf, index, size, honest, tree_root + b"\x00")
    if honest:
        yield "a proof hash 31 bytes long", (leaf, index, size, [honest[0][:31], *honest[1:]], tree_root)
        yield "a proof hash 33 bytes long", (leaf, index, size, [*honest[:-1], honest[-1] + b"\x00"], tree_root)
    for wrong_index in {index - 1, index + 1, index ^ 2, size, size + 1, -1}:
        if wrong_index != index:
            yield f"leaf index {wrong_index}", (leaf, wrong_index, size, honest, tree_root)
    yield "tree size 0", (leaf, index, 0, honest, tree_root)
    yield "tree size = index", (leaf, index, index, honest, tree_root)
    for wrong_size in {size - 1, size + 1, size * 2, size // 2}:
        if wrong_size != size and not inclusion_indistinguishable((index, size), index, wrong_size):
            yield f"tree size {wrong_size}", (leaf, index, wrong_size, honest, tree_root)


FULL_PROBE_CASES = [(0, 1), (0, 2), (1, 2), (2, 3), (0, 8), (5, 8), (4, 5), (6, 7), (12, 13), (10, 33), (32, 33)]


@pytest.mark.parametrize(("index", "size"), FULL_PROBE_CASES)
def test_it_rejects_every_inclusion_probe_flipping_every_bit(index: int, size: int) -> None:
    assert inclusion_accepts(honest_inclusion(index, size))
    accepted = [name for name, claim in inclusion_probes(index, size, every_bit=True) if inclusion_accepts(claim)]
    assert accepted == []


@pytest.mark.parametrize("size", range(1, 34))
def test_it_rejects_every_inclusion_probe_for_every_leaf(size: int) -> None:
    for index in range(size):
        accepted = [name for name, claim in inclusion_probes(index, size, every_bit=False) if inclusion_accepts(claim)]
        assert accepted == [], (index, size)


def test_it_accepts_a_changed_tree_size_only_where_the_root_cannot_tell_them_apart() -> None:
    """A verifier sees 32 opaque bytes per hash: the signed checkpoint, not the root, binds the size."""
    leaf, _, _, size_3_proof, size_3_root = honest_inclusion(0, 3)
    verify_inclusion(leaf, 0, 4, size_3_proof, size_3_root)  # ((l0, l1), l2) hashes as ((l0, l1), (l2, l3)) would
    seen_ambiguous = seen_rejected = 0
    for size in range(1, 34):
        for index in range(size):
            claim = honest_inclusion(index, size)
            for wrong_size in {size - 1, size + 1, size * 2, size // 2} - {size}:
                ambiguous = inclusion_indistinguishable((index, size), index, wrong_size)
                assert inclusion_accepts((claim[0], index, wrong_size, claim[3], claim[4])) == ambiguous
                seen_ambiguous += ambiguous
                seen_rejected += not ambiguous
    assert seen_ambiguous
    assert seen_rejected > seen_ambiguous


def test_it_refuses_a_proof_that_is_not_a_list_of_hashes() -> None:
    leaf, index, size, honest, tree_root = honest_inclusion(1, 2)
    not_a_list: Any = honest[0]
    with pytest.raises(ProofError, match="sequence of hashes"):
        verify_inclusion(leaf, index, size, not_a_list, tree_root)
    hex_strings: Any = [h.hex() for h in honest]
    with pytest.raises(ProofError, match=r"proof\[0\] is a str, not bytes"):
        verify_inclusion(leaf, index, size, hex_strings, tree_root)


def test_it_says_which_inclusion_check_failed() -> None:
    leaf, index, size, honest, tree_root = honest_inclusion(2, 5)
    with pytest.raises(ProofError, match="there is no leaf 5 of a tree of size 5"):
        verify_inclusion(leaf, 5, size, honest, tree_root)
    with pytest.raises(ProofError, match="has 4 hashes, more than the 3"):
        verify_inclusion(leaf, index, size, [*honest, SOME_HASH], tree_root)
    with pytest.raises(ProofError, match="has 2 hashes, fewer than the 3"):
        verify_inclusion(leaf, index, size, honest[:2], tree_root)
    with pytest.raises(ProofError, match="leads to root"):
        verify_inclusion(leaf, index, size, honest, SOME_HASH)
    with pytest.raises(ProofError, match="the root is 31 bytes; every hash is 32 bytes"):
        verify_inclusion(leaf, index, size, honest, tree_root[:31])


def inclusion_without_the_size_checks(leaf: bytes, index: int, size: int, hashes: list[bytes], head: bytes) -> bool:
    """RFC 9162 section 2.1.3.2 with neither "sn is 0" check: proofs need not consume the tree size."""
    fn, sn, r = index, size - 1, leaf
    for p in hashes:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r == head


def test_it_rejects_what_an_inclusion_verifier_without_the_size_checks_lets_through() -> None:
    leaf, _, _, size_2_proof, size_2_root = honest_inclusion(0, 2)
    assert inclusion_without_the_size_checks(leaf, 0, 3, size_2_proof, size_2_root)
    with pytest.raises(ProofError, match="fewer than the 2 needed to reach the root"):
        verify_inclusion(leaf, 0, 3, size_2_proof, size_2_root)
    fooled = 0
    for size in range(1, 17):
        for index in range(size):
            leaf, _, _, hashes, head = honest_inclusion(index, size)
            for claimed in range(index + 1, 34):
                if claimed != size and inclusion_without_the_size_checks(leaf, index, claimed, hashes, head):
                    fooled += 1
                    if not inclusion_indistinguishable((index, size), index, claimed):
                        assert not inclusion_accepts((leaf, index, claimed, hashes, head)), (index, size, claimed)
    assert fooled


# --- consistency --------------------------------------------------------------------------------


@pytest.mark.parametrize("new", range(1, MAX_SIZE + 1))
def test_it_proves_every_older_tree_consistent_from_the_store(new: int) -> None:
    store = store_for(DATA[:new])
    for old in range(new + 1):
        get = Recorder(store)
        generated = consistency_proof(get, old, new)
        assert generated == ([] if old == 0 else proof(old, DATA[:new]))
        verify_consistency(old, new, mth(DATA[:old]), mth(DATA[:new]), generated)
        assert set(get.calls) == nodes_needed_for_consistency(old, new)
        assert len(get.calls) == len(set(get.calls))


@pytest.mark.parametrize("claim", [(-1, 3), (4, 3), (1, 0)])
def test_it_generates_no_consistency_proof_for_a_shrinking_tree(claim: tuple[int, int]) -> None:
    get = node_getter(store_for(DATA[:4]))
    with pytest.raises(ValueError, match="no consistency proof from tree size"):
        consistency_proof(get, *claim)
    with pytest.raises(ValueError, match="no consistency proof from tree size"):
        nodes_needed_for_consistency(*claim)


def consistency_probes(old: int, new: int, every_bit: bool) -> Iterator[tuple[str, ConsistencyClaim]]:
    _, _, old_root, new_root, honest = honest_consistency(old, new)
    bits = range(256) if every_bit else range(0, 256, 9)
    for position, value in enumerate(honest):
        for bit in bits:
            mutated = [*honest]
            mutated[position] = flipped(value, bit)
            yield f"proof[{position}] bit {bit} flipped", (old, new, old_root, new_root, mutated)
    for bit in bits:
        yield f"old root bit {bit} flipped", (old, new, flipped(old_root, bit), new_root, honest)
        yield f"new root bit {bit} flipped", (old, new, old_root, flipped(new_root, bit), honest)
    yield "last hash dropped", (old, new, old_root, new_root, honest[:-1])
    yield "first hash dropped", (old, new, old_root, new_root, honest[1:])
    yield "empty proof", (old, new, old_root, new_root, [])
    yield "the new root appended", (old, new, old_root, new_root, [*honest, new_root])
    yield "garbage appended", (old, new, old_root, new_root, [*honest, SOME_HASH])
    yield "the old root prepended", (old, new, old_root, new_root, [old_root, *honest])
    yield "garbage prepended", (old, new, old_root, new_root, [SOME_HASH, *honest])
    yield "a hash inserted", (old, new, old_root, new_root, [honest[0], SOME_HASH, *honest[1:]])
    if len(honest) > 1:
        yield "hashes reversed", (old, new, old_root, new_root, honest[::-1])
    yield "roots swapped", (old, new, new_root, old_root, honest)
    yield "the new root for both", (old, new, new_root, new_root, honest)
    yield "the empty root as old root", (old, new, EMPTY_ROOT, new_root, honest)
    yield "an old root 31 bytes long", (old, new, old_root[:31], new_root, honest)
    yield "a new root 33 bytes long", (old, new, old_root, new_root + b"\x00", honest)
    yield "a proof hash 31 bytes long", (old, new, old_root, new_root, [honest[0][:31], *honest[1:]])
    yield "a proof hash 33 bytes long", (old, new, old_root, new_root, [*honest[:-1], honest[-1] + b"\x00"])
    yield "sizes swapped", (new, old, old_root, new_root, honest)
    yield "old size 0", (0, new, old_root, new_root, honest)
    yield "new size 0", (old, 0, old_root, new_root, honest)
    yield "equal sizes", (old, old, old_root, new_root, honest)
    yield "negative old size", (-1, new, old_root, new_root, honest)
    for wrong_old, wrong_new in {(old - 1, new), (old + 1, new), (old, new - 1), (old, new + 1), (old, new * 2)}:
        if not consistency_indistinguishable((old, new), wrong_old, wrong_new):
            yield f"sizes {wrong_old} and {wrong_new}", (wrong_old, wrong_new, old_root, new_root, honest)


FULL_CONSISTENCY_CASES = [(1, 2), (1, 3), (2, 3), (2, 8), (3, 7), (4, 5), (4, 8), (6, 8), (7, 8), (5, 13), (16, 33)]


@pytest.mark.parametrize(("old", "new"), FULL_CONSISTENCY_CASES)
def test_it_rejects_every_consistency_probe_flipping_every_bit(old: int, new: int) -> None:
    assert consistency_accepts(honest_consistency(old, new))
    accepted = [name for name, claim in consistency_probes(old, new, every_bit=True) if consistency_accepts(claim)]
    assert accepted == []


@pytest.mark.parametrize("new", range(2, 34))
def test_it_rejects_every_consistency_probe_for_every_older_size(new: int) -> None:
    for old in range(1, new):
        accepted = [name for name, claim in consistency_probes(old, new, every_bit=False) if consistency_accepts(claim)]
        assert accepted == [], (old, new)


def test_it_accepts_changed_sizes_only_where_the_roots_cannot_tell_them_apart() -> None:
    _, _, old_root, size_3_root, size_3_proof = honest_consistency(1, 3)
    verify_consistency(1, 4, old_root, size_3_root, size_3_proof)  # ((old, p0), p1) hashes as the tree of 4 would
    seen_ambiguous = seen_rejected = 0
    for new in range(2, 34):
        for old in range(1, new):
            _, _, old_root, new_root, honest = honest_consistency(old, new)
            for wrong in {(old - 1, new), (old + 1, new), (old, new - 1), (old, new + 1), (old, new * 2)}:
                ambiguous = consistency_indistinguishable((old, new), *wrong)
                assert consistency_accepts((*wrong, old_root, new_root, honest)) == ambiguous, (old, new, wrong)
                seen_ambiguous += ambiguous
                seen_rejected += not ambiguous
    assert seen_ambiguous
    assert seen_rejected > seen_ambiguous


def test_it_handles_equal_sizes_and_the_empty_tree() -> None:
    _, _, old_root, new_root, honest = honest_consistency(3, 7)
    verify_consistency(7, 7, new_root, new_root, [])
    verify_consistency(0, 7, EMPTY_ROOT, new_root, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="two different roots for tree size 7"):
        verify_consistency(7, 7, old_root, new_root, [])
    with pytest.raises(ProofError, match="from tree size 7 to tree size 7 must be empty; it has 4 hashes"):
        verify_consistency(7, 7, new_root, new_root, honest)
    with pytest.raises(ProofError, match="the root of the empty tree is e3b0c442"):
        verify_consistency(0, 7, old_root, new_root, [])
    with pytest.raises(ProofError, match="from tree size 0 to tree size 7 must be empty"):
        verify_consistency(0, 7, EMPTY_ROOT, new_root, honest)


def test_it_says_which_consistency_check_failed() -> None:
    _, _, old_root, new_root, honest = honest_consistency(3, 7)
    with pytest.raises(ProofError, match="no consistency from tree size 7 to tree size 3: a log only grows"):
        verify_consistency(7, 3, new_root, old_root, honest)
    with pytest.raises(ProofError, match="is empty; it needs 4 hashes"):
        verify_consistency(3, 7, old_root, new_root, [])
    with pytest.raises(ProofError, match="has 5 hashes, more than the 4 it needs"):
        verify_consistency(3, 7, old_root, new_root, [*honest, SOME_HASH])
    with pytest.raises(ProofError, match="has 3 hashes, fewer than the 4 needed to reach the root of size 7"):
        verify_consistency(3, 7, old_root, new_root, honest[:3])
    with pytest.raises(ProofError, match="leads to old root"):
        verify_consistency(3, 7, SOME_HASH, new_root, honest)
    with pytest.raises(ProofError, match="leads to new root"):
        verify_consistency(3, 7, old_root, SOME_HASH, honest)
    with pytest.raises(ProofError, match="the new root is 33 bytes"):
        verify_consistency(3, 7, old_root, new_root + b"\x00", honest)


def consistency_without_the_size_check(
    old: int, new: int, old_root: bytes, new_root: bytes, hashes: list[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 without step 7's "sn is 0": the real bug in verifiers seen in the field."""
    path = [old_root, *hashes] if old & (old - 1) == 0 else [*hashes]
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root


def test_it_rejects_a_proof_that_does_not_consume_the_second_tree_size() -> None:
    # The proof from 2 to 4 walks one level above the old tree; claiming it reaches size 5 leaves sn at 1.
    _, _, old_root, size_4_root, size_4_proof = honest_consistency(2, 4)
    assert consistency_without_the_size_check(2, 5, old_root, size_4_root, size_4_proof)
    with pytest.raises(ProofError, match="fewer than the 2 needed to reach the root of size 5"):
        verify_consistency(2, 5, old_root, size_4_root, size_4_proof)
    fooled = []
    for new in range(2, 17):
        for old in range(1, new):
            _, _, old_root, new_root, hashes = honest_consistency(old, new)
            for claimed in range(old + 1, 34):
                if claimed != new and consistency_without_the_size_check(old, claimed, old_root, new_root, hashes):
                    fooled.append((old, new, claimed))
                    if not consistency_indistinguishable((old, new), old, claimed):
                        assert not consistency_accepts((old, claimed, old_root, new_root, hashes)), (old, new, claimed)
    assert (2, 4, 5) in fooled


# --- random trees -------------------------------------------------------------------------------


def change_one_byte(hashes: list[bytes], draw: st.DataObject, label: str) -> None:
    position = draw.draw(st.integers(0, len(hashes) - 1), label=f"{label} proof hash")
    byte = draw.draw(st.integers(0, 31), label="byte")
    mask = draw.draw(st.integers(1, 255), label="xor")
    changed = bytearray(hashes[position])
    changed[byte] ^= mask
    hashes[position] = bytes(changed)


@hypothesis_settings(max_examples=60, deadline=None)
@given(leaves=st.lists(st.binary(max_size=24), min_size=1, max_size=300), draw=st.data())
def test_it_proves_random_trees_and_rejects_any_changed_byte(leaves: list[bytes], draw: st.DataObject) -> None:
    size = len(leaves)
    get = node_getter(store_for(leaves))
    tree_root = mth(leaves)
    assert subtree_root(get, 0, size) == tree_root

    index = draw.draw(st.integers(0, size - 1), label="index")
    hashes = inclusion_proof(get, index, size)
    verify_inclusion(leaf_hash(leaves[index]), index, size, hashes, tree_root)
    if hashes:
        change_one_byte(hashes, draw, "inclusion")
        with pytest.raises(ProofError):
            verify_inclusion(leaf_hash(leaves[index]), index, size, hashes, tree_root)

    old = draw.draw(st.integers(0, size), label="old size")
    old_root = mth(leaves[:old])
    hashes = consistency_proof(get, old, size)
    verify_consistency(old, size, old_root, tree_root, hashes)
    if hashes:
        change_one_byte(hashes, draw, "consistency")
        with pytest.raises(ProofError):
            verify_consistency(old, size, old_root, tree_root, hashes)


# --- cost ---------------------------------------------------------------------------------------


def test_it_reads_a_polylogarithmic_number_of_nodes_from_a_million_leaf_store() -> None:
    calls: list[Node] = []

    def virtual(level: int, index: int) -> bytes:
        calls.append((level, index))
        return sha256(f"{level}/{index}".encode())

    for size in (2**20, 2**20 - 1, 1_000_000):
        bound = math.ceil(math.log2(size)) ** 2
        for index in (0, 1, 2**19 - 1, 2**19, 777_777, size - 2, size - 1):
            calls.clear()
            hashes = inclusion_proof(virtual, index, size)
            assert len(calls) <= bound
            assert len(calls) == len(set(calls)) == len(nodes_needed_for_inclusion(index, size))
            assert len(hashes) <= 20
        for old in (1, 3, 2**19, 2**19 + 1, 777_777, size - 1):
            calls.clear()
            consistency_proof(virtual, old, size)
            assert len(calls) <= bound
            assert len(calls) == len(set(calls)) == len(nodes_needed_for_consistency(old, size))
        calls.clear()
        subtree_root(virtual, 0, size)
        assert len(calls) == size.bit_count()
