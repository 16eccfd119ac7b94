"""Outbound business events: written with the change, relayed in order, signed, at least once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from cases import outbox
from cases.actions import create_webhook, replay_webhook
from cases.models import OutboxEvent, Queue, Webhook
from cases.signatures import verify_request
from tests.intake.conftest import Signed, alert
from tests.personas import World, build_world
from tests.recorded import events

pytestmark = pytest.mark.django_db


class Receiver:
    """A webhook receiver on loopback: verifies each delivery's signature, keeps the events."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.deliveries: list[list[dict[str, Any]]] = []
        self.refused = 0
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        self.secret = b""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.set()
                receiver.hold.wait(30)
                verify_request(
                    method="POST",
                    path=self.path,
                    headers=dict(self.headers.items()),
                    body=body,
                    keys=lambda keyid: [receiver.secret],
                    now=time.time(),
                    window_seconds=300,
                    nonce_seen=lambda *_: False,
                )
                receiver.deliveries.append(json.loads(body)["events"])
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/caspix"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self) -> list[int]:
        return [event["id"] for delivery in self.deliveries for event in delivery]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    serving = Receiver()
    yield serving
    serving.hold.set()
    serving.server.shutdown()


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def subscribe(world: World, receiver: Receiver, types: list[str] | None = None) -> Webhook:
    webhook, secret = create_webhook(
        name="case system", url=receiver.url, event_types=types or [], acting_user=world.users["admin"]
    )
    receiver.secret = webhook.secret_bytes()
    assert secret == webhook.secret
    return webhook


def some_events(count: int) -> list[int]:
    outbox.emit_many([("alert.ingested", {"alert": f"a-{n}"}) for n in range(count)])
    return list(OutboxEvent.objects.values_list("pk", flat=True))


def sequence_of(pk: int) -> int:
    sequence = OutboxEvent.objects.get(pk=pk).sequence
    assert sequence is not None
    return sequence


def test_it_writes_the_events_with_the_alert_and_nothing_without(signed: Signed, routing: dict[str, Queue]) -> None:
    signed("POST", "/api/v1/alerts", alert(), idempotency_key="k-1")
    assert [e.event_type for e in OutboxEvent.objects.all()] == ["case.created", "alert.ingested"]
    created, ingested = OutboxEvent.objects.all()
    assert created.data["case"] == ingested.data["case"]
    assert "CUST-1" not in json.dumps([created.data, ingested.data])  # no customer data
    before = OutboxEvent.objects.count()
    routing["triage"].routing_rules.update(is_active=False)
    document = alert("A-2", "CUST-2")
    document["scenario"] = "mule-account"
    assert signed("POST", "/api/v1/alerts", document, idempotency_key="k-2").status_code == 503
    assert OutboxEvent.objects.count() == before


def test_it_delivers_in_order_signed_and_moves_the_cursor(world: World, receiver: Receiver) -> None:
    webhook = subscribe(world, receiver)
    ids = some_events(outbox.BATCH + 5)
    assert outbox.relay() == len(ids)
    assert receiver.ids() == ids
    assert [len(d) for d in receiver.deliveries] == [outbox.BATCH, 5]
    webhook.refresh_from_db()
    assert (webhook.delivered_through, webhook.failures) == (sequence_of(ids[-1]), 0)
    assert [e["sequence"] for d in receiver.deliveries for e in d] == list(range(1, len(ids) + 1))
    assert outbox.relay() == 0  # nothing new: nothing sent again


def test_it_keeps_to_the_types_a_webhook_asked_for(world: World, receiver: Receiver) -> None:
    subscribe(world, receiver, ["case.created"])
    outbox.emit_many([("alert.ingested", {"alert": "a"}), ("case.created", {"case": "C-000001"})])
    outbox.relay()
    assert [e["type"] for d in receiver.deliveries for e in d] == ["case.created"]


def test_it_backs_off_after_a_refusal_and_delivers_later(world: World, receiver: Receiver) -> None:
    webhook = subscribe(world, receiver)
    ids = some_events(3)
    receiver.status = 503
    assert outbox.relay() == 0
    webhook.refresh_from_db()
    assert (webhook.delivered_through, webhook.failures) == (0, 1)
    assert webhook.next_attempt_at > timezone.now()
    assert outbox.relay() == 0  # not due yet: not even tried
    assert len(receiver.deliveries) == 1
    receiver.status = 200
    assert outbox.relay(now=timezone.now() + timedelta(seconds=5)) == 3
    assert receiver.ids()[-3:] == ids


def test_it_replays_from_a_sequence_number_and_records_why(world: World, receiver: Receiver) -> None:
    webhook = subscribe(world, receiver)
    ids = some_events(4)
    outbox.relay()
    after = sequence_of(ids[1])
    replay_webhook(webhook, after=after, acting_user=world.users["admin"], reason="receiver restored a backup")
    outbox.relay()
    assert receiver.ids() == ids + ids[2:]
    assert events()[-1]["name"] == "WEBHOOK_REPLAYED"
    assert events()[-1]["after"] == {"delivered_through": after}


def test_it_refuses_a_replay_that_would_skip_events(world: World, receiver: Receiver) -> None:
    from django.core.exceptions import ValidationError

    webhook = subscribe(world, receiver)
    some_events(2)
    outbox.relay()
    with pytest.raises(ValidationError, match="through 2 only"):
        replay_webhook(webhook, after=3, acting_user=world.users["admin"], reason="skip ahead")
    with pytest.raises(ValidationError, match="sequence number"):
        replay_webhook(webhook, after=-1, acting_user=world.users["admin"], reason="before the first")
    webhook.refresh_from_db()
    assert webhook.delivered_through == 2


@pytest.mark.django_db(transaction=True)
def test_it_delivers_an_event_that_commits_after_later_ones(receiver: Receiver, db: None) -> None:
    """Ids are drawn as events are written: the event with the lower id commits last and is
    still delivered, after the other, with the next sequence number."""
    from django.db import connection, transaction

    webhook = subscribe(build_world(), receiver)
    written, finish = threading.Event(), threading.Event()

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                outbox.emit("alert.ingested", {"alert": "written first"})
                written.set()
                finish.wait(30)
        finally:
            connection.close()

    slow = threading.Thread(target=slow_transaction)
    slow.start()
    assert written.wait(30)
    with transaction.atomic():
        outbox.emit("alert.ingested", {"alert": "committed first"})  # relayed once it commits
    finish.set()
    slow.join(30)
    outbox.relay()
    delivered = [(e["data"]["alert"], e["sequence"]) for d in receiver.deliveries for e in d]
    assert delivered == [("committed first", 1), ("written first", 2)]
    first, second = OutboxEvent.objects.order_by("id")
    assert (first.data["alert"], first.sequence, second.sequence) == ("written first", 2, 1)
    webhook.refresh_from_db()
    assert webhook.delivered_through == 2


def test_it_refuses_an_unknown_event_type_and_plain_http_in_production(world: World, settings: Any) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="unknown event types"):
        create_webhook(
            name="x", url="https://x.example/h", event_types=["case.deleted"], acting_user=world.users["admin"]
        )
    settings.PRODUCTION = True
    with pytest.raises(ValidationError, match="https"):
        create_webhook(name="y", url="http://x.example/h", event_types=[], acting_user=world.users["admin"])


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_delivers_again_what_a_worker_killed_mid_delivery_had_sent(receiver: Receiver, db: None) -> None:
    from tests.caspix.test_celery_worker import ROOT, wait_until, worker_database_url

    world = build_world()
    webhook = subscribe(world, receiver)
    # written as emit() writes them, without the relay it asks for on commit (the test runs it)
    OutboxEvent.objects.bulk_create([OutboxEvent(event_type="alert.ingested", data={"n": n}) for n in range(5)])
    ids = list(OutboxEvent.objects.values_list("pk", flat=True))
    receiver.hold.clear()  # the receiver takes the first delivery and answers only later

    def start_worker(queue: str) -> subprocess.Popen[bytes]:
        env = {"CASPIX_ENV": "test", "DATABASE_URL": worker_database_url(), "PATH": "/usr/bin:/bin"}
        command = [sys.executable, "-m", "celery", "-A", "caspix", "worker", "--queues", queue, "--pool", "solo"]
        command += ["--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    from cases.tasks import relay_outbox

    queue = f"test-outbox-{webhook.pk}"
    first = start_worker(queue)
    try:
        relay_outbox.apply_async(queue=queue)
        assert receiver.arrived.wait(60)  # the batch is on the wire...
        first.send_signal(signal.SIGKILL)  # ...when the worker dies
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    receiver.hold.set()  # the receiver had the events all the same
    assert wait_until(lambda: len(receiver.deliveries) == 1, 10)
    webhook.refresh_from_db()
    assert webhook.delivered_through == 0  # never acknowledged to the dead worker
    second = start_worker(queue)
    try:
        relay_outbox.apply_async(queue=queue)
        assert wait_until(lambda: Webhook.objects.get(pk=webhook.pk).delivered_through == len(ids))
    finally:
        second.terminate()
        second.wait(30)
    assert receiver.ids() == ids + ids  # at least once, in order: the receiver deduplicates by id
