"""Field encryption against raw AES-GCM, and key-service round trips per request on a warm cache.

1. ``field_seal_open``: sealing and opening one field value (envelope header, associated data
   binding table, column and row, cached data key) against ``AESGCM.encrypt`` + ``decrypt`` with
   a fresh nonce on the same bytes, in the same process: target at least 0.5 of raw.
2. ``key_service_round_trips``: gunicorn (2 workers) on a scratch database with the Transit
   backend on a real OpenBao dev server whose audit log counts every Transit request. A view writes
   a record with two encrypted fields and their blind indexes, reads it back from the database and
   opens both. Warm: target 0 round trips per request. The ceiling is the same view with the
   in-memory key cache emptied before each request (what an envelope scheme without a cache pays).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import timeit
import urllib.request
import uuid
from dataclasses import asdict
from pathlib import Path

from bench.database import environment, manage, measure_in_child, scratch_database
from bench.figures import Figure
from bench.server import serve, wrk
from tests.openbao import dev_server

VALUE = b"GB82WEST12345698765432"  # an IBAN-sized value
ROUNDS = 50_000
REQUESTS = 200


def seal_open_main() -> None:
    """Run in a child process on the scratch database: prints the figure as JSON."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from caspix.crypto import envelope

    table, column, row = "crypto_tests_person", "account_number", uuid.uuid4()
    where = envelope.location(table, column, row)
    envelope.open_envelope(envelope.seal(VALUE, where), where)  # warm: the data key is made and cached
    raw = AESGCM(AESGCM.generate_key(bit_length=256))
    aad = where + b"\x01\x00\x00\x00\x01"  # the same associated data, made once

    def baseline() -> None:
        nonce = os.urandom(12)
        raw.decrypt(nonce, raw.encrypt(nonce, VALUE, aad), aad)

    def field() -> None:
        # the row's associated data is made once per model instance, as the field caches it
        envelope.open_envelope(envelope.seal(VALUE, where), where)

    ceiling = ROUNDS / min(timeit.repeat(baseline, number=ROUNDS, repeat=5))
    value = ROUNDS / min(timeit.repeat(field, number=ROUNDS, repeat=5))
    print(json.dumps(asdict(Figure.throughput("field_seal_open", value, "seal+open/s", ceiling))))


def _transit_requests(audit_log: Path) -> int:
    count = 0
    with audit_log.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            if entry.get("type") == "response" and entry.get("request", {}).get("path", "").startswith("transit/"):
                count += 1
    return count


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")


def _per_request(url: str, audit_log: Path) -> float:
    before = _transit_requests(audit_log)
    for _ in range(REQUESTS):
        _get(url)
    time.sleep(0.5)  # the audit device writes asynchronously to the request's answer
    return (_transit_requests(audit_log) - before) / REQUESTS


def run() -> list[Figure]:
    with scratch_database("caspix_bench_keys") as database, tempfile.TemporaryDirectory() as workdir:
        audit_log = Path(workdir) / "audit.log"
        with dev_server(Path(workdir), audit_log=audit_log) as bao:
            env = environment(
                database, CASPIX_KEY_BACKEND="transit", CASPIX_VAULT_ADDR=bao.addr, CASPIX_VAULT_TOKEN=bao.token
            )
            manage(env, "migrate", "--verbosity=0")
            manage(env, "ensure_keys")
            figures = measure_in_child(env, "bench.bench_keys.seal_open_main")
            with serve(env, "bench.settings", workers=2) as base:
                for _ in range(20):  # each worker makes or unwraps its keys once
                    _get(base + "/__bench__/sealed")
                warm = _per_request(base + "/__bench__/sealed", audit_log)
                cold = _per_request(base + "/__bench__/sealed?cold=1", audit_log)
                sealed = wrk(base + "/__bench__/sealed", seconds=10, connections=8)
                bare = wrk(base + "/__bench__/bare", seconds=10, connections=8)
    trips = Figure(
        "key_service_round_trips_per_request", round(warm, 3), "round trips", round(cold, 3), round(warm / cold, 3)
    )
    return [*figures, trips, Figure.throughput("encrypted_write_read_rps", sealed["rps"], "requests/s", bare["rps"])]
