"""Sealed segments: each checkpoint written once to a directory and to S3 Object Lock, and checkable.

The S3 target runs against moto's S3 server on loopback, started once per module.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from audit import ledger, merkle, segments, tasks
from audit.canonical import canonical
from audit.events import EventType
from audit.ledger import Actor, record
from audit.models import Checkpoint, DeliveryCursor, Event
from audit.segments import SegmentError, seal_segments
from audit.verify import note_problem
from caspix.crypto.keys import KeyName, key_service
from caspix.crypto.models import IntegrityIncident

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")
REGION: Final = "eu-west-1"
PREFIX = "caspix-ledger/"
RETENTION_DAYS = 30


def grow(count: int) -> None:
    with transaction.atomic():
        for n in range(count):
            record(EventType.KEY_ROTATED, actor=SYSTEM, object_id=n)
    ledger.integrate()
    ledger.seal(force=True)


def config(**changes: Any) -> dict[str, Any]:
    return {**settings.SEGMENTS, "DIRECTORY": "", "S3_BUCKET": "", **changes}


def b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def sealed_events() -> list[dict[str, Any]]:
    """The SEGMENT_SEALED event bodies, in order (integrating what is pending first)."""
    ledger.integrate()
    bodies = Event.objects.filter(event_type=EventType.SEGMENT_SEALED).values_list("body", flat=True)
    return [json.loads(bytes(body)) for body in bodies]


def cursor(target: str) -> int:
    found = DeliveryCursor.objects.filter(target=f"segments:{target}").first()
    return 0 if found is None else found.position


def crash_before_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seal once, dying after the write and before the transaction commits (event and cursor)."""

    def die(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(segments, "record", die)
    with pytest.raises(KeyboardInterrupt):
        seal_segments()
    monkeypatch.undo()


# --- an auditor's verifier, written from docs/LEDGER.md ----------------------------------------


def parse_note(note: str) -> tuple[str, int, bytes]:
    origin, size, root = note.split("\n")[:3]
    return origin, int(size), b64(root)


def proof_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf range whose MTH each hash of PROOF(old_size, D[new_size]) is (RFC 9162 §2.1.4.1)."""
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, whole = 0, new_size, True
    while old_size != end:
        split = start + (1 << ((end - start - 1).bit_length() - 1))
        if old_size <= split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((start, split))
            start, whole = split, False
    if not whole:
        ranges.append((start, end))
    return ranges[::-1]


def check_segment(content: bytes, previous: bytes | None) -> dict[str, Any]:
    """Verify one segment with only the one before it (None: it must be the first)."""
    document: dict[str, Any] = json.loads(content)
    assert canonical(document) == content
    assert document["format"] == "caspix-segment/1"
    origin, size, root = parse_note(document["checkpoint"])
    checkpoint = Checkpoint(size=size, root=root, note=document["checkpoint"])
    assert note_problem(checkpoint, key_service().public_keys(KeyName.LEDGER)) is None
    assert origin == document["origin"]
    old_size, old_root = document["previous_size"], b64(document["previous_root"])
    chain = b64(document["previous_chain"])
    if previous is None:
        assert (old_size, old_root, chain) == (0, merkle.EMPTY_ROOT, bytes(32))
    else:
        before = json.loads(previous)
        assert (old_size, old_root) == parse_note(before["checkpoint"])[1:]
        assert chain == b64(before["events"][-1]["chain"])
    leaves = []
    for seq, event in enumerate(document["events"], old_size + 1):
        assert event["seq"] == seq
        leaf = b64(event["leaf"])
        assert leaf == hashlib.sha256(b"\x00" + b64(event["body"])).digest()
        chain = hashlib.sha256(chain + leaf).digest()
        assert chain == b64(event["chain"])
        leaves.append(leaf)
    assert old_size + len(leaves) == size
    proof = [b64(value) for value in document["consistency_proof"]]
    merkle.verify_consistency(old_size, size, old_root, root, proof)
    # The proof's hashes over new leaves are rebuilt from this segment's events: they are the tree's.
    for (start, end), value in zip(proof_ranges(old_size, size), proof, strict=True):
        if start >= old_size:
            assert merkle.root(leaves[start - old_size : end - old_size]) == value
    return document


def check_segments(contents: list[bytes]) -> None:
    """Verify a run of segments from the first, and every root from all the leaves so far."""
    leaves: list[bytes] = []
    for position, content in enumerate(contents):
        document = check_segment(content, contents[position - 1] if position else None)
        leaves += [b64(event["leaf"]) for event in document["events"]]
        assert merkle.root(leaves) == parse_note(document["checkpoint"])[2]


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


# --- the directory target ------------------------------------------------------------------------


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    with override_settings(SEGMENTS=config(DIRECTORY=str(tmp_path))):
        yield tmp_path


def test_it_writes_each_checkpoint_once_as_a_read_only_segment(directory: Path) -> None:
    grow(5)
    grow(3)
    assert seal_segments() == 2
    files = segment_files(directory)
    assert [path.name for path in files] == [
        "segment-000000000001-000000000005.json",
        "segment-000000000006-000000000008.json",
    ]
    assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o444}
    check_segments([path.read_bytes() for path in files])
    assert cursor("dir") == 8


def test_it_writes_nothing_new_on_a_second_run(directory: Path) -> None:
    grow(3)
    assert seal_segments() == 1
    before = {path.name: path.stat().st_ino for path in segment_files(directory)}
    assert seal_segments() == 0
    assert {path.name: path.stat().st_ino for path in segment_files(directory)} == before


def test_it_seals_a_new_checkpoint_as_one_more_segment(directory: Path) -> None:
    grow(3)
    seal_segments()
    grow(2)  # integrates the SEGMENT_SEALED event of the first run too
    assert seal_segments() == 1
    files = segment_files(directory)
    assert files[-1].name == "segment-000000000004-000000000006.json"
    check_segments([path.read_bytes() for path in files])
    first = json.loads(b64(json.loads(files[-1].read_bytes())["events"][0]["body"]))
    assert (first["name"], first["object"]["id"]) == ("SEGMENT_SEALED", "segment-000000000001-000000000003.json")


def test_it_records_one_segment_sealed_event_per_write(directory: Path) -> None:
    grow(4)
    seal_segments()
    content = (directory / "segment-000000000001-000000000004.json").read_bytes()
    [event] = sealed_events()
    assert event["actor"] == {"id": None, "name": "segment sealer", "role": "system"}
    assert event["object"] == {"type": "segment", "id": "segment-000000000001-000000000004.json"}
    assert event["after"] == {
        "sha256": hashlib.sha256(content).hexdigest(),
        "first_seq": 1,
        "last_seq": 4,
        "checkpoint_size": 4,
        "target": "dir",
    }


def test_it_accepts_an_identical_segment_left_by_a_crash(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grow(3)
    crash_before_commit(monkeypatch)
    [written] = segment_files(directory)
    inode = written.stat().st_ino
    assert (cursor("dir"), sealed_events()) == (0, [])
    assert seal_segments() == 1
    assert [path.stat().st_ino for path in segment_files(directory)] == [inode]  # no temporary file left
    assert cursor("dir") == 3
    assert [event["object"]["id"] for event in sealed_events()] == [written.name]


@pytest.mark.django_db(transaction=True)  # incidents are stored on their own connection
def test_it_refuses_a_segment_name_holding_other_bytes(directory: Path) -> None:
    grow(3)
    forged = directory / "segment-000000000001-000000000003.json"
    forged.write_bytes(b"{}")
    with pytest.raises(SegmentError, match="already exists with other bytes"):
        seal_segments()
    assert forged.read_bytes() == b"{}"
    assert cursor("dir") == 0
    incident = IntegrityIncident.objects.get()
    assert (incident.kind, incident.table, incident.row) == ("ledger", "segments:dir", forged.name)
    assert [path.name for path in segment_files(directory)] == [forged.name]


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_seal_events_that_do_not_rebuild_the_signed_root(directory: Path) -> None:
    grow(3)
    # A consistent rewrite of event 3 (leaf and chain recomputed), as the tables' owner could.
    body = bytes(Event.objects.get(seq=3).body).replace(b'"id":"2"', b'"id":"X"')
    leaf = merkle.leaf_hash(body)
    chain = hashlib.sha256(bytes(Event.objects.get(seq=2).chain) + leaf).digest()
    with connection.cursor() as sql:
        sql.execute("ALTER TABLE audit_event DROP CONSTRAINT IF EXISTS audit_event_columns_match_body")
        sql.execute("ALTER TABLE audit_event DISABLE TRIGGER USER")
        sql.execute("UPDATE audit_event SET body = %s, leaf = %s, chain = %s WHERE seq = 3", [body, leaf, chain])
        sql.execute("ALTER TABLE audit_event ENABLE TRIGGER USER")
    with pytest.raises(SegmentError, match="do not rebuild the root of checkpoint 3"):
        seal_segments()
    assert segment_files(directory) == []
    assert IntegrityIncident.objects.get().kind == "ledger"


def test_it_refuses_a_missing_directory(tmp_path: Path) -> None:
    grow(1)
    with (
        override_settings(SEGMENTS=config(DIRECTORY=str(tmp_path / "unmounted"))),
        pytest.raises(SegmentError, match="does not exist"),
    ):
        seal_segments()


def test_it_does_nothing_when_no_target_is_configured() -> None:
    grow(2)
    with override_settings(SEGMENTS=config()):
        assert seal_segments() == 0
    assert not DeliveryCursor.objects.exists()


def test_it_runs_every_minute_as_a_beat_task(directory: Path) -> None:
    assert settings.CELERY_BEAT_SCHEDULE["seal-ledger-segments"] == {
        "task": "audit.tasks.seal_segments",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    }
    grow(2)
    assert tasks.seal_segments.apply().get() == 1


# --- the S3 target, against moto's server on loopback -------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                answer.request("GET", "/")
                answer.getresponse().read()
                answer.close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def s3(s3_endpoint: str) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="caspix-test",
        aws_secret_access_key="caspix-test",
    )


def new_bucket(s3: S3Client, *, object_lock: bool) -> str:
    name = f"caspix-seg-{uuid.uuid4().hex}"
    s3.create_bucket(
        Bucket=name,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=object_lock,
    )
    return name


def s3_config(endpoint: str, bucket: str, **changes: Any) -> dict[str, Any]:
    return config(
        S3_BUCKET=bucket,
        S3_PREFIX=PREFIX,
        S3_ENDPOINT=endpoint,
        S3_REGION=REGION,
        S3_ACCESS_KEY_ID="caspix-test",
        S3_SECRET_ACCESS_KEY="caspix-test",
        S3_RETENTION_DAYS=RETENTION_DAYS,
        **changes,
    )


@pytest.fixture
def bucket(s3: S3Client, s3_endpoint: str) -> Iterator[str]:
    name = new_bucket(s3, object_lock=True)
    with override_settings(SEGMENTS=s3_config(s3_endpoint, name)):
        yield name


def read_object(s3: S3Client, bucket: str, name: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=PREFIX + name)["Body"].read()


def test_it_writes_segments_to_s3_under_compliance_mode_retention(s3: S3Client, bucket: str) -> None:
    grow(4)
    grow(2)
    start = timezone.now()
    assert seal_segments() == 2
    end = timezone.now()
    names = ["segment-000000000001-000000000004.json", "segment-000000000005-000000000006.json"]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [PREFIX + name for name in names]
    head = s3.head_object(Bucket=bucket, Key=PREFIX + names[0])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    retention = timedelta(days=RETENTION_DAYS)
    assert start + retention - timedelta(seconds=1) <= head["ObjectLockRetainUntilDate"] <= end + retention
    check_segments([read_object(s3, bucket, name) for name in names])
    assert cursor("s3") == 6


def test_it_cannot_delete_a_sealed_segment_version(s3: S3Client, bucket: str) -> None:
    grow(2)
    seal_segments()
    key = PREFIX + "segment-000000000001-000000000002.json"
    [version] = s3.list_object_versions(Bucket=bucket)["Versions"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"], BypassGovernanceRetention=True)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.head_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])["ObjectLockMode"] == "COMPLIANCE"


def test_it_refuses_a_bucket_without_object_lock(s3: S3Client, s3_endpoint: str) -> None:
    grow(2)
    plain = new_bucket(s3, object_lock=False)
    with (
        override_settings(SEGMENTS=s3_config(s3_endpoint, plain)),
        pytest.raises(SegmentError, match=f"the S3 bucket '{plain}' does not have Object Lock enabled"),
    ):
        seal_segments()
    assert s3.list_objects_v2(Bucket=plain)["KeyCount"] == 0
    assert (cursor("s3"), sealed_events()) == (0, [])


def test_it_records_segment_sealed_events_with_the_object_sha256(s3: S3Client, bucket: str) -> None:
    grow(3)
    seal_segments()
    [event] = sealed_events()
    content = read_object(s3, bucket, "segment-000000000001-000000000003.json")
    assert event["after"] == {
        "sha256": hashlib.sha256(content).hexdigest(),
        "first_seq": 1,
        "last_seq": 3,
        "checkpoint_size": 3,
        "target": "s3",
    }


def test_it_accepts_its_own_object_after_a_crash_without_a_new_version(
    s3: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    grow(3)
    crash_before_commit(monkeypatch)
    assert cursor("s3") == 0
    assert seal_segments() == 1
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == 1  # If-None-Match: no second version
    assert [event["after"]["target"] for event in sealed_events()] == ["s3"]
    assert cursor("s3") == 3


@pytest.mark.django_db(transaction=True)
def test_it_refuses_an_object_holding_other_bytes(s3: S3Client, bucket: str) -> None:
    grow(2)
    key = PREFIX + "segment-000000000001-000000000002.json"
    s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    with pytest.raises(SegmentError, match="already exists with other bytes"):
        seal_segments()
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == 1
    assert read_object(s3, bucket, "segment-000000000001-000000000002.json") == b"{}"
    incident = IntegrityIncident.objects.get()
    assert (incident.table, incident.row) == ("segments:s3", "segment-000000000001-000000000002.json")


def test_it_seals_the_same_bytes_to_both_targets(s3: S3Client, s3_endpoint: str, tmp_path: Path) -> None:
    grow(2)
    grow(3)
    locked = new_bucket(s3, object_lock=True)
    with override_settings(SEGMENTS=s3_config(s3_endpoint, locked, DIRECTORY=str(tmp_path))):
        assert seal_segments() == 4
    for path in segment_files(tmp_path):
        assert read_object(s3, locked, path.name) == path.read_bytes()
    assert sorted((event["object"]["id"], event["after"]["target"]) for event in sealed_events()) == [
        ("segment-000000000001-000000000002.json", "dir"),
        ("segment-000000000001-000000000002.json", "s3"),
        ("segment-000000000003-000000000005.json", "dir"),
        ("segment-000000000003-000000000005.json", "s3"),
    ]
