"""Inclusion and consistency proofs, as JSON an auditor can check offline (docs/LEDGER.md)."""

from __future__ import annotations

import base64
from typing import Any

from audit import merkle
from audit.ledger import stored_nodes
from audit.models import Checkpoint, Event


class ProofUnavailableError(LookupError):
    """No proof can be given yet (or at all) for what was asked; the message says why."""


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def inclusion(seq: int, checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """Proof that event ``seq`` is in the tree of ``checkpoint`` (default: the latest)."""
    event = Event.objects.filter(seq=seq).values_list("body", "leaf").first()
    if event is None:
        raise ProofUnavailableError(f"there is no event {seq}")
    body, leaf = event
    if checkpoint is None:
        checkpoint = Checkpoint.objects.order_by("-size").first()
    if checkpoint is None or checkpoint.size < seq:
        raise ProofUnavailableError(f"event {seq} is not sealed by a checkpoint yet")
    nodes = stored_nodes(merkle.nodes_needed_for_inclusion(seq - 1, checkpoint.size))
    proof = merkle.inclusion_proof(lambda level, index: nodes[(level, index)], seq - 1, checkpoint.size)
    return {
        "seq": seq,
        "leaf_index": seq - 1,
        "body": base64.b64encode(bytes(body)).decode(),
        "leaf_hash": _b64(bytes(leaf)),
        "tree_size": checkpoint.size,
        "root": _b64(bytes(checkpoint.root)),
        "inclusion_proof": [_b64(h) for h in proof],
        "checkpoint": checkpoint.note,
    }


def consistency(old_size: int, new_size: int) -> dict[str, Any]:
    """Proof that the checkpoint at ``new_size`` extends the one at ``old_size``."""
    checkpoints = {c.size: c for c in Checkpoint.objects.filter(size__in=[old_size, new_size])}
    missing = [size for size in (old_size, new_size) if size not in checkpoints]
    if missing:
        raise ProofUnavailableError(f"there is no checkpoint at size {missing[0]}")
    if old_size > new_size:
        raise ProofUnavailableError("the first checkpoint must not be larger than the second")
    nodes = stored_nodes(merkle.nodes_needed_for_consistency(old_size, new_size))
    proof = merkle.consistency_proof(lambda level, index: nodes[(level, index)], old_size, new_size)
    return {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": _b64(bytes(checkpoints[old_size].root)),
        "new_root": _b64(bytes(checkpoints[new_size].root)),
        "consistency_proof": [_b64(h) for h in proof],
        "old_checkpoint": checkpoints[old_size].note,
        "new_checkpoint": checkpoints[new_size].note,
    }
