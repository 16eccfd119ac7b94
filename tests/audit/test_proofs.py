"""audit_proof: inclusion and consistency proofs an auditor checks with the RFC 9162 verifier."""

from __future__ import annotations

import base64
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client

from audit import ledger, merkle, proofs
from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Checkpoint
from audit.verify import note_problem

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")


def grow(count: int) -> None:
    with transaction.atomic():
        for n in range(count):
            record(EventType.KEY_ROTATED, actor=SYSTEM, object_id=n)
    ledger.integrate()
    ledger.seal(force=True)


def b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(value) for value in values]


def proof_json(*args: str) -> dict[str, object]:
    out = io.StringIO()
    call_command("audit_proof", *args, stdout=out)
    result: dict[str, object] = json.loads(out.getvalue())
    return result


@pytest.mark.parametrize("seq", [1, 6, 13])
def test_it_proves_an_event_is_in_the_latest_checkpoint(seq: int) -> None:
    grow(13)
    proof = proof_json("--seq", str(seq))
    body = base64.b64decode(str(proof["body"]))
    assert merkle.leaf_hash(body) == base64.b64decode(str(proof["leaf_hash"]))
    root = base64.b64decode(str(proof["root"]))
    merkle.verify_inclusion(merkle.leaf_hash(body), seq - 1, 13, b64(proof["inclusion_proof"]), root)  # type: ignore[arg-type]
    assert str(proof["checkpoint"]).startswith(f"{ledger.origin()}\n13\n")


def test_it_proves_against_an_older_checkpoint_when_asked() -> None:
    grow(5)
    grow(4)
    proof = proof_json("--seq", "2", "--size", "5")
    assert proof["tree_size"] == 5


def test_it_proves_one_checkpoint_extends_another() -> None:
    grow(5)
    grow(8)
    proof = proof_json("--from", "5", "--to", "13")
    merkle.verify_consistency(
        5,
        13,
        base64.b64decode(str(proof["old_root"])),
        base64.b64decode(str(proof["new_root"])),
        b64(proof["consistency_proof"]),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seq", "99"], "there is no event 99"),
        (["--seq", "1", "--size", "4"], "no checkpoint at size 4"),
        (["--from", "3", "--to", "5"], "no checkpoint at size 3"),
        (["--from", "5", "--to", "5"], None),
        ([], "give --seq N"),
    ],
)
def test_it_says_why_it_cannot_prove(args: list[str], message: str | None) -> None:
    grow(5)
    if message is None:
        assert proof_json(*args)["consistency_proof"] == []
        return
    with pytest.raises(CommandError, match=message):
        call_command("audit_proof", *args, stdout=io.StringIO())


def test_it_waits_for_a_checkpoint_before_proving() -> None:
    grow(2)
    with transaction.atomic():
        record(EventType.KEY_ROTATED, actor=SYSTEM)
    ledger.integrate()
    with pytest.raises(proofs.ProofUnavailableError, match="not sealed by a checkpoint yet"):
        proofs.inclusion(3)


def test_it_refuses_a_backwards_consistency_proof() -> None:
    grow(2)
    grow(2)
    with pytest.raises(proofs.ProofUnavailableError, match="must not be larger"):
        proofs.consistency(4, 2)


def test_it_publishes_the_keys_that_verify_checkpoints(client: Client) -> None:
    grow(3)
    published = client.get("/audit/ledger-keys").json()
    assert published["origin"] == ledger.origin()
    out = io.StringIO()
    call_command("ledger_keys", stdout=out)
    assert json.loads(out.getvalue()) == published
    keys = {key["version"]: base64.b64decode(key["public_key"]) for key in published["keys"]}
    assert note_problem(Checkpoint.objects.get(), keys) is None
    vkey = published["keys"][0]["vkey"]
    assert vkey.startswith(f"{ledger.origin()}+{published['keys'][0]['key_id']}+")
