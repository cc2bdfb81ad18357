"""The real URLconf plus views that fail unexpectedly, for the error-handling tests."""

from __future__ import annotations

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatproject.urls import handler404, handler500
from chatproject.urls import urlpatterns as real_urlpatterns

SECRET_DETAIL = "database password is hunter2"


def explode(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(SECRET_DETAIL)


def suspicious(request: HttpRequest) -> HttpResponse:
    raise SuspiciousOperation(SECRET_DETAIL)


def get_only(request: HttpRequest) -> HttpResponse:
    """A plain Django view (CSRF-protected, unlike the API's) that answers HTML errors of its own."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    return HttpResponse("ok", content_type="text/plain")


class ExplodingAPIView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    def get(self, request: Request) -> Response:
        raise RuntimeError(SECRET_DETAIL)


urlpatterns = [
    path("api/v1/explode/", explode),
    path("api/v1/explode-drf/", ExplodingAPIView.as_view()),
    path("api/v1/suspicious/", suspicious),
    path("api/v1/get-only/", get_only),
    path("explode/", explode),
    *real_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
