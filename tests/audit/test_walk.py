"""The batched walk computes what RFC 9162 defines, however the events are cut into batches."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from audit import merkle, walk
from audit.ledger import ZERO_CHAIN


def rows_of(count: int) -> list[walk.Row]:
    rows, chain = [], ZERO_CHAIN
    for seq in range(1, count + 1):
        body = f'{{"n":{seq}}}'.encode()
        leaf = merkle.leaf_hash(body)
        chain = hashlib.sha256(chain + leaf).digest()
        rows.append((seq, body, leaf, chain))
    return rows


def perfect_nodes(leaves: list[bytes]) -> dict[int, list[bytes]]:
    """Every perfect subtree of the tree, by level, from the definition."""
    levels, nodes, level = {}, leaves, 0
    while len(nodes) > 1:
        level += 1
        nodes = [merkle.node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        levels[level] = nodes
    return levels


def cut(rows: list[walk.Row], sizes: list[int]) -> list[list[walk.Row]]:
    batches, position = [], 0
    for size in sizes * (len(rows) + 1):
        if position >= len(rows):
            break
        batches.append(rows[position : position + size])
        position += size
    return batches


@given(
    count=st.integers(min_value=0, max_value=300),
    start=st.integers(min_value=0, max_value=300),
    sizes=st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=6),
    stops=st.sets(st.integers(min_value=1, max_value=300), max_size=8),
)
def test_it_computes_the_roots_and_nodes_of_the_definition(
    count: int, start: int, sizes: list[int], stops: set[int]
) -> None:
    start = min(start, count)
    rows = rows_of(count)
    leaves = [leaf for _, _, leaf, _ in rows]
    needed = merkle.nodes_needed_for_subtree(0, start)
    known = {(0, index): leaf for index, leaf in enumerate(leaves)}
    known.update({(level, i): node for level, nodes in perfect_nodes(leaves).items() for i, node in enumerate(nodes)})
    roots = [known[key] for key in sorted(needed, key=lambda key: key[1] << key[0])]
    walked = walk.Walk(start, rows[start - 1][3] if start else ZERO_CHAIN, roots, stops=sorted(stops))
    for batch in cut(rows[start:], sizes):
        assert (
            walked.feed([(body, leaf, link) for _, body, leaf, link in batch])
            if len(batch) % 2
            else walked.feed_numbered(batch)
        )
    result = walked.result()
    assert (result.size, result.chain, result.damage) == (count, rows[-1][3] if rows else ZERO_CHAIN, None)
    assert result.roots_at == {stop: merkle.root(leaves[:stop]) for stop in stops if start < stop <= count}
    for level, nodes in perfect_nodes(leaves).items():
        completed = b"".join(nodes[start >> level :])
        assert result.digests.get(level, hashlib.sha256().digest()) == hashlib.sha256(completed).digest()


@given(count=st.integers(min_value=2, max_value=80), bad=st.integers(min_value=0), size=st.integers(1, 40))
def test_it_names_the_first_bad_event_of_a_batch(count: int, bad: int, size: int) -> None:
    rows = rows_of(count)
    bad %= count
    seq, body, leaf, link = rows[bad]
    rows[bad] = (seq, body + b" ", leaf, link)
    walked = walk.Walk(0, ZERO_CHAIN, [])
    for batch in cut(rows, [size]):
        if not walked.feed([(body, leaf, link) for _, body, leaf, link in batch]):
            break
    assert walked.damage == (bad + 1, "altered", "the body does not hash to the stored leaf")
    assert walked.size == bad


def test_it_round_trips_what_it_found_through_json() -> None:
    walked = walk.Walk(0, ZERO_CHAIN, [], stops=[3])
    walked.feed_numbered(rows_of(5))
    result = walked.result()
    assert walk.Walked.from_json(result.as_json()) == result
