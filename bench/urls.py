"""Caspix's URLs plus the benchmarks' views, through the same stack.

* ``/__bench__/bare``: a Django view doing nothing (the ceiling of request handling);
* ``/__bench__/drf``: a bare DRF view that parses a JSON body with the intake API's parser and
  answers (the ceiling of request handling for the intake API);
* ``/__bench__/ingest``: the bare DRF endpoint of bulk intake: the same parser, schema and
  ingestion (grouping, routing, encryption, ledger, outbox) for the ``bench`` client, without
  the signature, nonce, rate limit and idempotency (the ceiling of the intake API);
* ``/__bench__/page``: a page of the application's layout with nothing in it, rendered for the
  signed-in user (the ceiling of the workspace's pages);
* ``/__bench__/sealed``: writes a record with two encrypted fields and their blind indexes, reads
  it back from the database and opens both (``?cold=1`` empties the key cache first).
"""

import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template import RequestContext, Template
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cases.api import schemas
from cases.api.views import answer_of, incoming_of
from cases.intake import ingest
from cases.models import ApiClient
from caspix.access import public
from caspix.crypto import envelope
from caspix.strictjson import StrictJSONParser


@public
def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


_PAGE = Template('{% extends "base.html" %}{% block content %}<h1>Page</h1><p>Nothing here.</p>{% endblock %}')


@public
def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_PAGE.render(RequestContext(request, {})))


@public
def sealed(request: HttpRequest) -> HttpResponse:
    from tests.crypto_app.models import Person  # installed under the test settings only

    if request.GET.get("cold"):
        envelope.cache.clear()
    person = Person.objects.create(
        name="bench", national_id=uuid.uuid4().hex[:12], account_number="GB82WEST12345698765432"
    )
    again = Person.objects.get(pk=person.pk)
    ok = len(again.national_id) == 12 and again.account_number.startswith("GB82")
    return HttpResponse(b"ok" if ok else b"wrong", status=200 if ok else 500, content_type="text/plain")


class BareDRF(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        return Response({"received": len(request.data)})


class BareIngest(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [StrictJSONParser]

    def post(self, request: Request) -> Response:
        client = ApiClient.objects.get(source="bench")
        results: list[dict[str, Any]] = []
        valid = []
        for index, item in enumerate(request.data):
            try:
                valid.append(incoming_of(schemas.validate(item)))
            except schemas.SchemaError as error:
                results.append({"index": index, "status": 422, "errors": error.faults})
        outcomes = ingest(client, valid)
        results += [{"status": 201 if outcome.created else 200, **answer_of(outcome)} for outcome in outcomes]
        return Response({"accepted": len(outcomes), "results": results})


urlpatterns = [
    path("__bench__/bare", bare),
    path("__bench__/drf", public(BareDRF.as_view())),
    path("__bench__/ingest", public(BareIngest.as_view())),
    path("__bench__/page", page),
    path("__bench__/sealed", sealed),
    path("", include("caspix.urls")),
]
