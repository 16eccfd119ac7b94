"""Alert intake over HTTP: signed, idempotent bulk ingestion against the bare DRF endpoint.

On a scratch PostgreSQL database, gunicorn (2 workers, as on this 2-core machine) serves the
test settings; a Celery worker sequences the ledger events and relays the outbox, as in
production. ``SENDERS``
processes send bulk requests of ``BATCH`` alerts over keep-alive connections, each signed with
the client helper (``clients/python/caspix_client.py``) under its own ``Idempotency-Key``:

* ``intake_bulk``: alerts kept per second, end to end (signature, nonce, rate limit,
  idempotency, schema, grouping, routing, encryption, ledger, outbox), against the same senders
  posting the same bodies to ``/__bench__/ingest``: the bare DRF endpoint of bulk intake on the
  same server, which parses, validates and ingests alike with no signature check and no
  idempotency. Targets: ≥ 2,000 alerts/s, ≥ 0.5.
* ``intake_bulk_over_parsing`` (for the record, no target): the same figure against
  ``/__bench__/drf``, a DRF view that only parses the body with the API's parser and answers.

Each round posts to the three endpoints in turn; figures are the medians of ``ROUNDS`` rounds.
* ``intake_duplicates``: every request sent three times at once (each copy signed anew, the
  same key): the alerts kept beyond one per external id. Target: 0.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from bench.database import environment, manage, scratch_database
from bench.figures import Figure
from bench.server import ROOT, serve

sys.path.insert(0, str(ROOT / "clients" / "python"))
from caspix_client import sign

SENDERS = 4
WORKERS = int(os.environ.get("BENCH_INTAKE_WORKERS", "2"))  # as WEB_CONCURRENCY defaults; 4 measured no more
BATCH = 100
REQUESTS_PER_SENDER = int(os.environ.get("BENCH_INTAKE_REQUESTS", "20"))
ROUNDS = 5
BROKER = "redis://127.0.0.1:6379/14"
CUSTOMERS = 2000


def _alerts(prefix: str, count: int) -> list[dict[str, Any]]:
    alerts = []
    for n in range(count):
        alerts.append(
            {
                "external_id": f"{prefix}-{n}",
                "scenario": "card-velocity",
                "score": 72.5,
                "occurred_at": "2026-11-24T10:15:00Z",
                "subject": {
                    "customer_id": f"CUST-{hash((prefix, n)) % CUSTOMERS}",
                    "name": "Erika Mustermann",
                    "national_id": "T22000129",
                    "date_of_birth": "1964-08-12",
                    "country": "DE",
                },
                "accounts": [{"number": "DE89 3704 0044 0532 0130 00", "currency": "EUR"}],
                "transactions": [
                    {
                        "external_id": f"T-{prefix}-{n}",
                        "occurred_at": "2026-11-24T10:14:02+01:00",
                        "amount": "1250.00",
                        "currency": "EUR",
                        "direction": "debit",
                        "channel": "card_not_present",
                        "account": "DE89370400440532013000",
                        "card_number": "4111 1111 1111 1111",
                        "counterparty": {"name": "Example Shop", "country": "NL"},
                    }
                ],
            }
        )
    return alerts


def _post(connection: http.client.HTTPConnection, path: str, body: bytes, key: str, keyid: str, secret: bytes) -> int:
    headers = {"Content-Type": "application/json", "Idempotency-Key": key, **sign("POST", path, body, keyid, secret)}
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def _sender(job: tuple[str, str, str, bytes, int, str]) -> int:
    """One sender: REQUESTS_PER_SENDER bulk requests; the alerts the server took."""
    base, path, keyid, secret, index, run = job
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
    bodies = [
        json.dumps(_alerts(f"{run}-{index}-{r}", BATCH)).encode() for r in range(REQUESTS_PER_SENDER)
    ]  # made before the clock starts, as an upstream system has its alerts at hand
    taken = 0
    start_at = float(os.environ.get("BENCH_START_AT", "0"))
    while time.time() < start_at:
        time.sleep(0.001)
    for r, body in enumerate(bodies):
        status = _post(connection, path, body, f"{run}-{index}-{r}", keyid, secret)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        taken += BATCH
    connection.close()
    return taken


def _throughput(base: str, path: str, keyid: str, secret: bytes) -> float:
    run = uuid.uuid4().hex[:8]
    os.environ["BENCH_START_AT"] = str(time.time() + 1.0)  # the pool's processes start meanwhile
    with multiprocessing.get_context("fork").Pool(SENDERS) as pool:
        started = float(os.environ["BENCH_START_AT"])
        taken = sum(pool.map(_sender, [(base, path, keyid, secret, i, run) for i in range(SENDERS)]))
        elapsed = time.time() - started
    return taken / elapsed


def _three_times(base: str, keyid: str, secret: bytes, requests: int) -> set[str]:
    """Send each of ``requests`` bulk requests three times at once; the external ids sent."""
    sent: set[str] = set()
    url = urlsplit(base)
    for r in range(requests):
        alerts = _alerts(f"dup-{r}", BATCH)
        sent.update(alert["external_id"] for alert in alerts)
        body = json.dumps(alerts).encode()
        barrier = threading.Barrier(3)

        def send(body: bytes = body, key: str = f"dup-{r}", barrier: threading.Barrier = barrier) -> None:
            connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
            barrier.wait()
            while _post(connection, "/api/v1/alerts/bulk", body, key, keyid, secret) == 409:
                time.sleep(0.05)  # in flight under another copy: retry, as a sender does
            connection.close()

        threads = [threading.Thread(target=send) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return sent


def setup_main() -> None:
    """Child process: a client with a key, a queue and a catch-all routing rule; prints the key."""
    from accounts.models import Team
    from cases.models import ApiClient, ApiKey, Queue, RoutingRule, Scope, secret_text

    team = Team.objects.create(slug="bench", name="Bench")
    queue = Queue.objects.create(slug="bench", name="Bench", team=team)
    RoutingRule.objects.create(position=1, name="everything", queue=queue, priority=2)
    client = ApiClient.objects.create(
        name="Bench", source="bench", scopes=[s.value for s in Scope], rate_limit=1_000_000
    )
    raw = os.urandom(32)
    key = ApiKey(client=client, key_id="bench-1")
    key.secret = secret_text(raw)
    key.save()
    print(json.dumps({"keyid": key.key_id, "secret": raw.hex()}))


def count_main() -> None:
    """Child process: the alerts kept, and how many external ids they hold."""
    from django.db.models import Count

    from cases.models import Alert

    print(
        json.dumps(
            {
                "alerts": Alert.objects.count(),
                "ids": Alert.objects.aggregate(n=Count("external_id", distinct=True))["n"],
            }
        )
    )


def _child_json(env: dict[str, str], function: str) -> dict[str, Any]:
    module, name = function.rsplit(".", 1)
    command = [sys.executable, "-c", f"import django; django.setup(); from {module} import {name}; {name}()"]
    output = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=600)
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def run() -> list[Figure]:
    figures: list[Figure] = []
    with scratch_database("caspix_bench_intake") as database:
        env = environment(
            database, CASPIX_LEDGER_INTEGRATE="task", CASPIX_OUTBOX_RELAY="task", CELERY_BROKER_URL=BROKER
        )
        manage(env, "migrate", "--verbosity=0")
        key = _child_json(env, "bench.bench_intake.setup_main")
        keyid, secret = key["keyid"], bytes.fromhex(key["secret"])
        worker_command = [sys.executable, "-m", "celery", "-A", "caspix", "worker", "--pool", "solo"]
        worker_command += ["--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"]
        worker = subprocess.Popen(
            worker_command, cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "bench.settings"}, stdout=subprocess.DEVNULL
        )
        try:
            with serve(env, "bench.settings", workers=WORKERS) as base:
                values, bare, parsing = [], [], []
                for n in range(ROUNDS):
                    parsing.append(_throughput(base, "/__bench__/drf", keyid, secret))
                    bare.append(_throughput(base, "/__bench__/ingest", keyid, secret))
                    values.append(_throughput(base, "/api/v1/alerts/bulk", keyid, secret))
                    print(
                        f"  round {n + 1}: {values[-1]:.0f} against {bare[-1]:.0f} (parsing only {parsing[-1]:.0f})",
                        file=sys.stderr,
                        flush=True,
                    )
                value = statistics.median(values)
                figures.append(Figure.throughput("intake_bulk", value, "alerts/s", statistics.median(bare)))
                figures.append(
                    Figure.throughput("intake_bulk_over_parsing", value, "alerts/s", statistics.median(parsing))
                )
                before = _child_json(env, "bench.bench_intake.count_main")
                sent = _three_times(base, keyid, secret, requests=10)
                after = _child_json(env, "bench.bench_intake.count_main")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            subprocess.run(
                [sys.executable, "-c", f"import redis; redis.Redis.from_url({BROKER!r}).flushdb()"],
                cwd=ROOT,
                check=False,
                timeout=30,
            )
        kept = after["alerts"] - before["alerts"]
        duplicates = (after["alerts"] - after["ids"]) + max(0, kept - len(sent))
        figures.append(Figure("intake_duplicates", duplicates, "alerts", 0, 0))
        if kept != len(sent):
            raise RuntimeError(f"sent {len(sent)} alerts three times each, {kept} kept")
    return figures
