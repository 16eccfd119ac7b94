"""Caspix's URLs plus the benchmarks' views, through the same stack.

* ``/__bench__/bare``: a Django view doing nothing (the ceiling of request handling);
* ``/__bench__/drf``: a bare DRF view that parses a JSON body with the intake API's parser and
  answers (the ceiling of the intake API);
* ``/__bench__/sealed``: writes a record with two encrypted fields and their blind indexes, reads
  it back from the database and opens both (``?cold=1`` empties the key cache first).
"""

import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from caspix.access import public
from caspix.crypto import envelope


@public
def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


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


urlpatterns = [
    path("__bench__/bare", bare),
    path("__bench__/drf", public(BareDRF.as_view())),
    path("__bench__/sealed", sealed),
    path("", include("caspix.urls")),
]
