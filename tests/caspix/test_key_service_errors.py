"""A key service that cannot answer is a clear 503 with nothing written; tampering is a 500 and an incident."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from caspix.access import public
from caspix.crypto import envelope
from caspix.crypto.keys import KeyServiceError
from caspix.crypto.models import IntegrityIncident
from tests.crypto_app.models import Person


@public
@csrf_exempt
def add_person(request: HttpRequest) -> HttpResponse:
    with transaction.atomic(durable=True):
        Person.objects.create(name="before the encrypted field")
        Person.objects.create(name="Ada", national_id=request.POST["national_id"])
    return HttpResponse("added", status=201)


@public
def show_person(request: HttpRequest, pk: str) -> HttpResponse:
    return HttpResponse(Person.objects.get(pk=pk).national_id)


urlpatterns = [
    path("people", add_person),
    path("people/<uuid:pk>", show_person),
    path("", include("caspix.urls")),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]


class Down:
    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise KeyServiceError(f"{name}: the key service cannot be reached (ConnectionError)")

        return fail


@pytest.fixture
def key_service_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "key_service", Down)


@pytest.mark.usefixtures("key_service_down")
def test_it_answers_503_and_writes_nothing_when_the_key_service_is_down() -> None:
    response = Client().post("/people", {"national_id": "AB123456C"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert b"nothing was saved" in response.content
    assert b"AB123456C" not in response.content
    assert not Person.objects.exists()


@pytest.mark.usefixtures("key_service_down")
def test_it_answers_htmx_and_api_clients_in_plain_text() -> None:
    htmx = Client().post("/people", {"national_id": "AB123456C"}, HTTP_HX_REQUEST="true")
    api = Client().post("/people", {"national_id": "AB123456C"}, HTTP_ACCEPT="application/json")
    for response in (htmx, api):
        assert response.status_code == 503
        assert response["Content-Type"].startswith("text/plain")
        assert b"nothing was saved" in response.content


def test_it_cannot_read_a_row_on_a_cold_cache_when_the_key_service_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    envelope.cache.clear()
    monkeypatch.setattr(envelope, "key_service", Down)
    response = Client().get(f"/people/{person.pk}")
    assert response.status_code == 503
    assert not IntegrityIncident.objects.exists()


def test_it_answers_500_and_records_an_incident_for_a_tampered_value() -> None:
    person = Person.objects.create(name="Ada", national_id="AB123456C")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE crypto_tests_person SET national_id = %s WHERE id = %s", [b"\x01" + b"\x00" * 40, person.pk]
        )
    response = Client().get(f"/people/{person.pk}", HTTP_ACCEPT="text/html")
    assert response.status_code == 500
    assert b"integrity check" in response.content
    assert IntegrityIncident.objects.filter(row=str(person.pk)).count() == 1
