"""The real URLconf plus views that fail unexpectedly, for the error-handling tests."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
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


class ExplodingAPIView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    def get(self, request: Request) -> Response:
        raise RuntimeError(SECRET_DETAIL)


urlpatterns = [
    path("api/v1/explode/", explode),
    path("api/v1/explode-drf/", ExplodingAPIView.as_view()),
    path("explode/", explode),
    *real_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
