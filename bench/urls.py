"""Caspix's URLs plus ``/__bench__/bare``: a Django view doing nothing, through the same stack."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

from caspix.access import public


@public
def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("__bench__/bare", bare), path("", include("caspix.urls"))]
