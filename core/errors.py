"""Domain errors raised by services, and their translation into API responses.

Services raise these instead of DRF exceptions so the WebSocket consumer can
turn the same failure into an `error` frame with the same meaning.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views import csrf, defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.dbretry import is_database_unavailable


class ServiceError(Exception):
    """Base for failures a caller can be told about."""

    code = "invalid"
    http_status: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, detail: str | dict[str, Any]) -> None:
        super().__init__(detail if isinstance(detail, str) else str(detail))
        self.detail = detail


class NotFound(ServiceError):
    """The object does not exist, or the caller may not know that it does."""

    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND


class Forbidden(ServiceError):
    """The caller can see the object but may not do this to it."""

    code = "forbidden"
    http_status = status.HTTP_403_FORBIDDEN


class Invalid(ServiceError):
    """The request is well-formed but its values are not acceptable.

    `detail` is a message or a mapping of field name to message.
    """

    code = "invalid"


class Conflict(ServiceError):
    """The request clashes with the current state."""

    code = "conflict"
    http_status = status.HTTP_409_CONFLICT


def error_body(detail: str | dict[str, Any]) -> dict[str, Any]:
    """Return the JSON body for an error: field errors as lists, otherwise `detail`."""
    if isinstance(detail, dict):
        return {field: value if isinstance(value, list) else [value] for field, value in detail.items()}
    return {"detail": detail}


DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly."
HOST_NOT_ALLOWED = "The Host header is not one this server answers to."
TOO_MANY_FIELDS = "Too many parameters or fields in one request."


def too_large_detail() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    return f"The request body is too large: at most {limit / 2**20:g} MiB."


def suspicious_refusal(exc: SuspiciousOperation) -> tuple[int, str]:
    """Return the status and message for a request Django refuses as malformed (never the exception's text)."""
    if isinstance(exc, RequestDataTooBig):
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, too_large_detail()
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return HTTPStatus.BAD_REQUEST, TOO_MANY_FIELDS
    if isinstance(exc, DisallowedHost):
        return HTTPStatus.BAD_REQUEST, HOST_NOT_ALLOWED
    return HTTPStatus.BAD_REQUEST, "Bad request."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render service errors like DRF's own, and never let one become a 500."""
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.detail), status=exc.http_status)
    if is_database_unavailable(exc):
        # A lost connection that could not be retried safely, or none to be had
        # in time (a restart): the client may try again, with the same client_id.
        response = Response(
            {"detail": DATABASE_UNAVAILABLE}, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"}
        )
        response.database_error = exc  # type: ignore[attr-defined]  # for core.dbretry's retry of the view
        return response
    if isinstance(exc, SuspiciousOperation):
        # Django's own refusals (a body too large, too many fields) raised while the view reads the request.
        status_code, detail = suspicious_refusal(exc)
        return Response({"detail": detail}, status=status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    return exception_handler(exc, context)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    """JSON under /api/, so API clients always get a body they can parse; 503 when the database is away."""
    error = sys.exception()  # Django calls this while handling the exception
    if error is not None and is_database_unavailable(error):
        return JsonResponse({"detail": DATABASE_UNAVAILABLE}, status=503, headers={"Retry-After": "1"})
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under /api/, as DRF words its own CSRF refusal; Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"CSRF Failed: {reason}"}, status=403)
    return csrf.csrf_failure(request, reason=reason)


class ApiErrorsMiddleware:
    """Under /api/, answer every error in JSON, with DEBUG on or off.

    Django refuses some requests before (or around) any view: a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, a Host not in ALLOWED_HOSTS, too many fields.
    Its answer is an HTML page (with DEBUG, the debug page), which API
    clients cannot parse. This middleware checks those up front and turns
    any other error page under /api/ into `{"detail": "…"}` with the same status.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        try:
            request.get_host()
            # Read now: Django refuses a body over the limit, chunked ones too, as it reads it.
            # Not a multipart upload: its files stream to disk as parsed, never whole into memory.
            if request.content_type != "multipart/form-data":
                request.body  # noqa: B018 (kept on the request for the view)
        except SuspiciousOperation as exc:
            status_code, detail = suspicious_refusal(exc)
            return JsonResponse({"detail": detail}, status=status_code)
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            return _as_json(response)
        return response


def _as_json(response: HttpResponseBase) -> JsonResponse:
    status_code = response.status_code
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    detail = "Bad request." if status_code == 400 else f"{phrase[0]}{phrase[1:].lower()}."
    replacement = JsonResponse({"detail": detail}, status=status_code)
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            replacement[header] = response[header]
    return replacement
