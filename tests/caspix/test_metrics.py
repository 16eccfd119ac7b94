"""/metrics answers Prometheus only from the configured range or with the bearer token."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import Client, override_settings


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_it_answers_a_scraper_in_the_allowed_range(db: None, address: str) -> None:
    response = Client(REMOTE_ADDR=address).get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_before_middlewares_total" in response.content


def test_it_answers_404_outside_the_range(db: None) -> None:
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 404


def test_it_ignores_forwarded_addresses(db: None) -> None:
    client = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert client.get("/metrics").status_code == 404


@override_settings(METRICS_TOKEN="scrape-token-0123456789", METRICS_ALLOWED_NETWORKS=[])
def test_it_answers_a_scraper_with_the_token(db: None) -> None:
    client = Client(REMOTE_ADDR="203.0.113.9")
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Basic scrape-token-0123456789"}).status_code == 404


@override_settings(METRICS_ALLOWED_NETWORKS=[ipaddress.ip_network("10.0.0.0/8")])
def test_it_refuses_a_malformed_peer_address(db: None) -> None:
    assert Client(REMOTE_ADDR="not-an-address").get("/metrics").status_code == 404
