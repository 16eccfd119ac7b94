"""An evidence pack of a case with 10,000 ledger events and 50 MB of attachments, built as the
worker builds it and verified as an auditor verifies it. Target ([oversight]): at most 30 s.

A scratch PostgreSQL database holds the case, its 10,000 events among 40,000 others (so that
proofs walk a tree of 50,000 leaves, not one of the case alone), and five 10 MB files attached
through the workspace's action (encrypted, hashed). Measured in fresh processes:

* ``pack_build``: ``reporting.exports.build_export``, from the queued export to the encrypted
  parts stored: events read and proven (RFC 9162), files decrypted and checked, records, the
  summary, the manifest signed;
* ``pack_verify``: ``caspix_verify.verify_pack`` on the downloaded ZIP, with the public key;
* the ceiling, ``pack_zip_floor``: Python's zipfile writing the same event bodies and file bytes
  from memory, with SHA-256 over each: what any packer must at least do.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
import zipfile

from bench.database import environment, manage, scratch_database
from bench.figures import Figure
from bench.server import ROOT

CASE_EVENTS = int(os.environ.get("CASPIX_BENCH_PACK_EVENTS", "10000"))
OTHER_EVENTS = 4 * CASE_EVENTS
FILES = 5
FILE_MB = 10
TARGET_SECONDS = 30.0


def fill() -> None:
    """Child, in the scratch database: the case, its events, its files; prints the export's id."""
    from django.db import transaction

    from audit.events import EventType
    from audit.ledger import Actor, Entry, integrate_all, record_many
    from cases import casework
    from reporting import exports
    from reporting.models import Export
    from tests.personas import build_world

    world = build_world()
    case = world.cases["analyst"]["team"]
    analyst, auditor = world.users["analyst"], world.users["auditor"]
    for n in range(FILES):
        line = f"statement {n}: a line of a bank statement as an analyst attaches it\n".encode()
        data = (line * (FILE_MB * 1024 * 1024 // len(line) + 1))[: FILE_MB * 1024 * 1024]
        casework.add_evidence(case, f"statement-{n}.txt", data, acting_user=analyst)
    actor = Actor(analyst.pk, analyst.username, "analyst")
    for start in range(0, CASE_EVENTS + OTHER_EVENTS, 1000):
        entries = [
            Entry(EventType.NOTE_ADDED, "case", case.pk if n % 5 == 0 else 10_000_000 + n, after={"thread": str(n)})
            for n in range(start, start + 1000)
        ]
        with transaction.atomic():
            record_many(entries, actor=actor)
        integrate_all(seal_when_idle=False)
    export = exports.request_export(Export.Kind.CASE_PACK, case=case, acting_user=auditor)
    print(json.dumps({"export": str(export.pk)}))


def build() -> None:
    """Child: build the export as the worker does, then write the ZIP for the verifier."""
    from reporting import exports
    from reporting.models import Export

    export_id, path = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    exports.build_export(export_id)
    seconds = time.perf_counter() - started
    export = Export.objects.select_related("requested_by").get(pk=export_id)
    if export.status != Export.Status.READY:
        raise RuntimeError(f"the pack was not built: {export.failure}")
    _, chunks = exports.download(export_id, acting_user=export.requested_by)
    with open(path, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    from audit.ledger import published_keys

    with open(path + ".keys.json", "w") as keys:
        json.dump(published_keys(), keys)
    with zipfile.ZipFile(path) as archive:
        events = sum(1 for _ in archive.open("ledger/events.jsonl"))
    print(json.dumps({"seconds": seconds, "size": export.size, "events": events}))


def verify() -> None:
    """Child: the offline verifier, nothing of Django loaded."""
    from caspix_verify import load_public_keys, verify_pack

    path = sys.argv[1]
    started = time.perf_counter()
    with open(path + ".keys.json") as keys:
        result = verify_pack(path, load_public_keys(keys.read()))
    seconds = time.perf_counter() - started
    if not result.intact:
        raise RuntimeError(f"the pack does not verify: {result.problems[:3]}")
    print(json.dumps({"seconds": seconds}))


def floor() -> None:
    """Child: zipfile and SHA-256 over the same bytes, from memory."""
    path = sys.argv[1]
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    started = time.perf_counter()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in contents.items():
            hashlib.sha256(data).hexdigest()
            compress = zipfile.ZIP_STORED if name.startswith("attachments/") else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=compress)
    hashlib.sha256(out.getvalue()).hexdigest()
    print(json.dumps({"seconds": time.perf_counter() - started}))


def _child(function: str, *args: str, env: dict[str, str] | None = None, django: bool = True) -> dict[str, float]:
    import subprocess

    setup = "import django; django.setup(); " if django else ""
    call = f"from bench.bench_packs import {function}; {function}()"
    code = f"import sys; sys.argv = ['bench', *{list(args)!r}]; {setup}{call}"
    output = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if output.returncode:
        raise RuntimeError(f"bench_packs.{function} failed: {output.stderr[-3000:]}")
    result: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def run() -> list[Figure]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-packs-") as folder, scratch_database("bench_packs") as database:
        env = environment(database)
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        export = str(_child("fill", env=env)["export"])
        path = os.path.join(folder, "pack.zip")
        built = _child("build", export, path, env=env)
        if built["events"] < CASE_EVENTS:
            raise RuntimeError(f"the pack holds {built['events']} events, fewer than the case's {CASE_EVENTS}")
        checked = _child("verify", path, django=False)
        zipped = _child("floor", path, django=False)
    total = built["seconds"] + checked["seconds"]
    return [
        Figure.latency("pack_build", built["seconds"], "s", zipped["seconds"]),
        Figure.latency("pack_verify", checked["seconds"], "s", zipped["seconds"]),
        Figure.latency("pack_build_and_verify_vs_target", total, "s", TARGET_SECONDS),
        Figure.throughput("pack_size", built["size"] / 1e6, "MB", built["size"] / 1e6),
    ]
