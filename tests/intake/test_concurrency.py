"""Many deliveries of the same alert at once, over HTTP, make one alert, one party and one case."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from caspix_client import CaspixClient, CaspixError  # on the path that conftest gives

from cases.models import Alert, ApiKey, Case, Party, Queue
from tests.intake.conftest import alert

pytestmark = pytest.mark.django_db(transaction=True)

SENDERS = 12


def at_once(send: Callable[[int], Any]) -> list[Any]:
    """Run ``send(n)`` in SENDERS threads released together; each result or CaspixError."""
    barrier = threading.Barrier(SENDERS)
    results: list[Any] = [None] * SENDERS

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = send(n)
        except CaspixError as error:
            results[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_it_keeps_one_alert_from_parallel_retries_under_one_key(
    live_server: Any, api_key: tuple[ApiKey, bytes], routing: dict[str, Queue]
) -> None:
    key, secret = api_key
    caspix = CaspixClient(live_server.url, key.key_id, secret)
    results = at_once(lambda n: caspix.post_alert(alert(), idempotency_key="same"))
    outcomes = Counter("created" if isinstance(r, dict) else r.status for r in results)
    assert outcomes["created"] >= 1, outcomes
    assert set(outcomes) <= {"created", 409}, outcomes
    ids = {r["id"] for r in results if isinstance(r, dict)}
    assert len(ids) == 1  # every answer names the one alert (the later ones replayed)
    assert caspix.post_alert(alert(), idempotency_key="same")["id"] in ids  # a retry after the 409s
    assert (Alert.objects.count(), Party.objects.count(), Case.objects.count()) == (1, 1, 1)


def test_it_keeps_one_alert_from_parallel_deliveries_under_different_keys(
    live_server: Any, api_key: tuple[ApiKey, bytes], routing: dict[str, Queue]
) -> None:
    key, secret = api_key
    caspix = CaspixClient(live_server.url, key.key_id, secret)
    results = at_once(lambda n: caspix.post_alert(alert(), idempotency_key=f"key-{n}"))
    assert all(isinstance(r, dict) for r in results), results
    assert Counter(r["result"] for r in results) == {"created": 1, "duplicate": SENDERS - 1}
    assert len({r["id"] for r in results}) == 1
    assert (Alert.objects.count(), Party.objects.count(), Case.objects.count()) == (1, 1, 1)


def test_it_opens_one_case_for_parallel_alerts_about_one_new_customer(
    live_server: Any, api_key: tuple[ApiKey, bytes], routing: dict[str, Queue]
) -> None:
    key, secret = api_key
    caspix = CaspixClient(live_server.url, key.key_id, secret)
    results = at_once(lambda n: caspix.post_alert(alert(f"A-{n}", "CUST-7"), idempotency_key=f"key-{n}"))
    assert all(isinstance(r, dict) and r["result"] == "created" for r in results), results
    assert len({r["case"] for r in results}) == 1
    assert (Alert.objects.count(), Party.objects.count(), Case.objects.count()) == (SENDERS, 1, 1)
