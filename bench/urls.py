"""Caspix's URLs plus the benchmarks' views, through the same stack.

* ``/__bench__/bare``: a Django view doing nothing (the ceiling of request handling);
* ``/__bench__/sealed``: writes a record with two encrypted fields and their blind indexes, reads
  it back from the database and opens both (``?cold=1`` empties the key cache first).
"""

import uuid

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

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


urlpatterns = [path("__bench__/bare", bare), path("__bench__/sealed", sealed), path("", include("caspix.urls"))]
