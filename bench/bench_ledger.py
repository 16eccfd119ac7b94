"""The audit ledger: append throughput, audited actions, full verification and inclusion proofs.

All on a scratch PostgreSQL database, each against a ceiling measured in the same run:

* ``ledger_append``: 16 writer processes, each committing one-event transactions through
  ``record()`` (asking for sequencing through Redis as in production), while a Celery worker
  sequences them, until every event is sequenced; against 16 processes doing the plain
  serialised append a ledger would otherwise need (advisory lock + INSERT + COMMIT, raw
  psycopg). Target ≥ 1.0.
* ``audited_action``: 16 processes each running a real Caspix action (``cases.actions.move_queue``:
  lock the queue, check, change its team, record it) against the same action with its
  ``record()`` taken out. Target ≥ 0.8. ``audited_single_update`` is the worst case, for the
  record: an action that is one UPDATE, where the ledger's INSERT is as much work again.
* ``ledger_verify``: ``audit.verify.verify()`` of 1,000,000 events streamed from PostgreSQL
  (leaf, link and Merkle hashes, checkpoints, columns in the database, stored nodes), against
  the ledger's chain (leaf and link hashes) recomputed over the same bodies held in memory;
  medians of 3 rounds, alternated. Target ≥ 0.35.
* ``inclusion_proof_p99``: 2,000 inclusion proofs of random events at 1,000,000 events; the
  ceiling is the p99 of reading one event by primary key. Target ≤ 5 ms.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench.database import environment, manage, measure_in_child, scratch_database
from bench.figures import Figure

WRITERS = 16
APPENDS_PER_WRITER = 500
LARGE = int(os.environ.get("BENCH_LEDGER_EVENTS", "1000000"))  # smaller for a quick look
VERIFY_ROUNDS = 3
PROOFS = 2000
ROUNDS = 5  # each throughput and its ceiling, alternated
BROKER = "redis://127.0.0.1:6379/14"  # the appends' sequencing tasks go here, and are dropped


def _emit(figure: Figure) -> None:
    print(json.dumps(asdict(figure)), flush=True)


def _in_processes(count: int, work: Callable[[int], None]) -> float:
    """Run ``work(i)`` in ``count`` forked processes started together; returns the wall time."""
    started, finished = _started_together(count, work)
    return finished - started


def _started_together(count: int, work: Callable[[int], None]) -> tuple[float, float]:
    """Run ``work(i)`` in ``count`` forked processes started together; returns when they were
    released to work and when the last finished (``time.perf_counter()``).

    Processes, not threads: the web workers that record events are separate processes, and
    threads would measure the interpreter lock instead of the ledger. Each opens its database
    and broker connections before the start, as a long-running web worker has them open.
    """
    from django.db import connection, connections

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(count + 1)

    def run(index: int) -> None:
        connection.ensure_connection()
        from audit import ledger

        ledger._schedule_integration()  # a first task: the broker connection and queue are set up
        barrier.wait()
        try:
            work(index)
        finally:
            connections.close_all()

    connections.close_all()  # every child opens its own connection
    processes = [context.Process(target=run, args=(i,)) for i in range(count)]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    for process in processes:
        process.join()
        if process.exitcode:
            raise RuntimeError(f"a benchmark process failed with exit code {process.exitcode}")
    return started, time.perf_counter()


def _worker() -> subprocess.Popen[bytes]:
    """A Celery worker on the benchmark's broker and database, as production runs it (one
    process: the ledger has one integrator at a time anyway)."""
    command = [sys.executable, "-m", "celery", "-A", "caspix", "worker", "--pool", "solo", "--loglevel", "WARNING"]
    command += ["--without-heartbeat", "--without-gossip", "--without-mingle"]
    return subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.DEVNULL)


def _paired(ceiling: Callable[[], float], measured: Callable[[], float]) -> tuple[float, float]:
    """Medians of ``ROUNDS`` runs of each, alternated, so that the state of the machine and of
    PostgreSQL (checkpoints, autovacuum) weighs on both alike; (measured, ceiling)."""
    ceilings, values = [], []
    for n in range(ROUNDS):
        ceilings.append(ceiling())
        values.append(measured())
        print(f"  round {n + 1}: {values[-1]:.0f} against {ceilings[-1]:.0f}", file=sys.stderr, flush=True)
    return statistics.median(values), statistics.median(ceilings)


def appends_main() -> None:
    """Child process: append throughput and audited actions."""
    from django.conf import settings
    from django.db import connection, transaction

    from accounts.models import Role, Team
    from audit import ledger
    from audit.events import EventType
    from audit.ledger import Actor, record
    from cases import actions
    from cases.models import Queue
    from caspix.celery import app
    from tests.factories import make_user

    # As in production: recording transactions publish their sequencing tasks to Redis (a
    # database of the benchmark's own, emptied at the end), and a Celery worker sequences.
    actor = Actor(1, "bench", "analyst")
    total = WRITERS * APPENDS_PER_WRITER

    # ledger_append's ceiling: the plain serialised append
    database = settings.DATABASES["default"]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_serial (seq bigint PRIMARY KEY, body bytea NOT NULL)")
    body = b'{"bench":"' + b"x" * 300 + b'"}'

    def serial(index: int) -> None:
        import psycopg

        with psycopg.connect(dbname=database["NAME"], host=database["HOST"], user=database["USER"]) as raw:
            for _ in range(APPENDS_PER_WRITER):
                with raw.transaction():
                    raw.execute("SELECT pg_advisory_xact_lock(42)")
                    raw.execute(
                        "INSERT INTO bench_serial SELECT coalesce(max(seq), 0) + 1, %s FROM bench_serial", [body]
                    )

    def appends(index: int) -> None:
        for n in range(APPENDS_PER_WRITER):
            with transaction.atomic():
                record(EventType.KEY_ROTATED, actor=actor, object_type="bench", object_id=f"{index}-{n}")

    def sequenced_appends() -> float:
        """Events/s from the writers' start until the worker has sequenced the last event: timed
        from the same moment as the ceiling, once the processes are forked and connected."""
        until = ledger.head().size + total
        started, _ = _started_together(WRITERS, appends)
        while ledger.head().size < until:
            time.sleep(0.01)
        return total / (time.perf_counter() - started)

    worker = _worker()
    value, ceiling = _paired(lambda: total / _in_processes(WRITERS, serial), sequenced_appends)
    _emit(Figure.throughput("ledger_append", value, "events/s", ceiling))

    # A business action as Caspix's are: lock the row, check, change it, record it (here
    # cases.actions.move_queue, handing a queue to the other team), against the same action with
    # its record() call taken out.
    admin = make_user("bench-admin", roles=["admin"])
    teams = [Team.objects.create(slug=f"bench-{i}", name=f"Bench {i}") for i in range(2)]
    queues = [Queue.objects.create(slug=f"bench-{i}", name=f"Bench {i}", team=teams[0]).pk for i in range(WRITERS)]

    def move(audited: bool) -> Callable[[int], None]:
        def work(index: int) -> None:
            if not audited:
                setattr(actions, "record", lambda *args, **kwargs: None)  # noqa: B010
                setattr(actions, "actor_of", lambda user: None)  # noqa: B010
            acting = type(admin).objects.get(pk=admin.pk)  # as a request loads its user, once
            queue = Queue.objects.get(pk=queues[index])
            for n in range(APPENDS_PER_WRITER):
                actions.move_queue(queue, teams[(n + 1) % 2], acting_user=acting)

        return work

    value, ceiling = _paired(
        lambda: total / _in_processes(WRITERS, move(False)), lambda: total / _in_processes(WRITERS, move(True))
    )
    _emit(Figure.throughput("audited_action", value, "actions/s", ceiling))

    # The worst case, for the record: an action that is a single UPDATE, where the ledger's
    # INSERT is as much work again.
    roles = [Role.objects.create(slug=f"bench-{i}", name=f"Bench {i}").pk for i in range(WRITERS)]

    def update(audited: bool) -> Callable[[int], None]:
        def work(index: int) -> None:
            for n in range(APPENDS_PER_WRITER):
                with transaction.atomic():
                    Role.objects.filter(pk=roles[index]).update(description=f"revision {n}")
                    if audited:
                        record(EventType.KEY_ROTATED, actor=actor, object_type="role", object_id=roles[index])

        return work

    value, ceiling = _paired(
        lambda: total / _in_processes(WRITERS, update(False)), lambda: total / _in_processes(WRITERS, update(True))
    )
    _emit(Figure.throughput("audited_single_update", value, "actions/s", ceiling))

    worker.terminate()
    worker.wait(timeout=30)
    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()  # type: ignore[attr-defined]


def verify_main() -> None:
    """Child process: fill 1,000,000 events, then verification and inclusion proofs."""
    import psycopg
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from audit import ledger, proofs
    from audit.canonical import canonical, rfc3339
    from audit.models import Checkpoint
    from audit.verify import verify

    database = settings.DATABASES["default"]
    now = rfc3339(timezone.now())
    with (
        psycopg.connect(dbname=database["NAME"], host=database["HOST"], user=database["USER"]) as raw,
        raw.cursor().copy("COPY audit_pending (body, recorded_at) FROM STDIN") as copy,
    ):
        for n in range(LARGE):
            document = {
                "v": 1,
                "type": 401,
                "name": "KEY_ROTATED",
                "time": now,
                "actor": {"id": n % 500, "name": f"analyst {n % 500}", "role": "analyst"},
                "source": {"address": "192.0.2.1", "request": None},
                "object": {"type": "case", "id": str(n)},
                "reason": "",
                "before": {"state": "open"},
                "after": {"state": "in review"},
            }
            copy.write_row((canonical(document), timezone.now()))
    while ledger.integrate(batch_size=20000):
        if ledger.head().size % (LARGE // 10) == 0:
            ledger.seal(force=True)
    ledger.seal(force=True)
    assert Checkpoint.objects.order_by("-size").values_list("size", flat=True).first() == LARGE
    with connection.cursor() as cursor:  # as autovacuum leaves a ledger, and not in the middle of the figure
        cursor.execute("VACUUM (ANALYZE) audit_event, audit_tree_node")

    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM audit_event ORDER BY seq")
        bodies = [bytes(row[0]) for row in cursor.fetchall()]

    def chained(bodies: list[bytes]) -> None:
        sha256 = hashlib.sha256
        chain = bytes(32)
        for body in bodies:
            leaf = sha256(b"\x00" + body).digest()
            chain = sha256(chain + leaf).digest()

    ceilings, rates = [], []
    for _ in range(VERIFY_ROUNDS):  # alternated, medians: this VM's speed wanders by a third
        started = time.perf_counter()
        chained(bodies)
        ceilings.append(LARGE / (time.perf_counter() - started))
        started = time.perf_counter()
        report = verify()
        rates.append(LARGE / (time.perf_counter() - started))
        if not report.intact or report.size != LARGE:
            raise RuntimeError(f"the benchmark ledger did not verify: {report.as_dict()}")
    del bodies
    _emit(Figure.throughput("ledger_verify", statistics.median(rates), "events/s", statistics.median(ceilings)))

    rng = random.Random(7)
    latest = Checkpoint.objects.order_by("-size").first()

    def p99(work: Callable[[int], Any]) -> float:
        timings = []
        for _ in range(PROOFS):
            seq = rng.randint(1, LARGE)
            started = time.perf_counter()
            work(seq)
            timings.append(time.perf_counter() - started)
        timings.sort()
        return timings[int(len(timings) * 0.99)] * 1000

    def read_one(seq: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT body FROM audit_event WHERE seq = %s", [seq])
            cursor.fetchone()

    floor = p99(read_one)
    proof = p99(lambda seq: proofs.inclusion(seq, latest))
    _emit(Figure.latency("inclusion_proof_p99", proof, "ms", floor))


def run() -> list[Figure]:
    figures: list[Figure] = []
    with scratch_database("caspix_bench_ledger") as database:
        env = environment(database, CASPIX_LEDGER_INTEGRATE="task", CELERY_BROKER_URL=BROKER)
        manage(env, "migrate", "--verbosity=0")
        figures += measure_in_child(env, "bench.bench_ledger.appends_main")
    with scratch_database("caspix_bench_ledger") as database:
        env = environment(database, CASPIX_LEDGER_INTEGRATE="task")
        manage(env, "migrate", "--verbosity=0")
        figures += measure_in_child(env, "bench.bench_ledger.verify_main", timeout=3600)
    return figures
