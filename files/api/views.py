"""Files API: upload into a room, download and thumbnail, each checked against who may see it now."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import AuthedRequest
from core import ratelimit
from core.errors import Invalid, NotFound
from files import selectors, services
from files.api.serializers import FileSerializer, UploadInput
from files.payloads import file_payload
from files.serving import THUMBNAIL_CACHE_CONTROL, file_response
from files.uploads import SizeLimitedUploadHandler, declared_length, declared_too_large
from rooms.selectors import membership_require


class UploadView(APIView):
    parser_classes = [MultiPartParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # A session sign-in (the web page) has its CSRF token checked by reading request.POST, which
        # parses the multipart body during authentication: the handler that streams and caps it
        # must be in place before then, and a declared size over the limit refused before that read.
        request._request.upload_handlers = [SizeLimitedUploadHandler(request._request)]
        if declared_too_large(declared_length(request)):
            raise services.too_large_error()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": UploadInput},
        responses={
            201: FileSerializer,
            400: OpenApiResponse(description="No file, an empty file, or an image too large to process"),
            413: OpenApiResponse(description="Over UPLOAD_MAX_BYTES, or over the uploader's quota"),
            429: OpenApiResponse(description="Too many uploads at once"),
        },
        summary="Upload a file into a room, to attach to a message",
    )
    def post(self, request: AuthedRequest, room_id: int) -> Response:
        # With a bearer token, outsiders are refused before a byte of the body is read.
        membership_require(user=request.user, room=room_id)
        ratelimit.upload_budget_require(request.user.pk)
        # Streamed to a temporary file, and stopped once past the limit (files.uploads; see initial()).
        upload = request.FILES.get("file")
        unknown = sorted(set(request.data) - {"file"})
        if unknown:
            if upload is not None:
                upload.close()
            raise Invalid(dict.fromkeys(unknown, "Unknown field."))
        if upload is None:
            raise Invalid({"file": "Send the file as multipart form data, in the field 'file'."})
        try:
            stored = services.upload_store(
                room_id=room_id, uploader=request.user, upload=upload.file, name=upload.name, size=upload.size or 0
            )
        finally:
            upload.close()
        return Response(file_payload(stored), status=status.HTTP_201_CREATED)


class FileView(APIView):
    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(description="The file's bytes (206 for a Range)"),
            302: OpenApiResponse(description="To a signed URL valid for at most 5 minutes (object storage)"),
            304: OpenApiResponse(description="The caller's copy (If-None-Match) is current; access checked as for 200"),
            404: OpenApiResponse(description="No such file, or not the caller's to see"),
        },
        summary="Download a file",
    )
    def get(self, request: AuthedRequest, file_id: int) -> HttpResponseBase:
        stored = selectors.file_for_reader(user=request.user, file_id=file_id)
        return file_response(
            method=request.method or "GET",
            key=stored.key,
            content_type=stored.content_type,
            name=stored.name,
            range_header=request.headers.get("Range", ""),
            if_none_match=request.headers.get("If-None-Match", ""),
        )


class ThumbnailView(APIView):
    @extend_schema(
        responses={
            (200, "image/webp"): OpenApiResponse(description="At most 400 px on its longer side"),
            302: OpenApiResponse(description="To a signed URL valid for at most 5 minutes (object storage)"),
            304: OpenApiResponse(description="The caller's copy (If-None-Match) is current; access checked as for 200"),
            404: OpenApiResponse(description="Not an image, no thumbnail yet, or not the caller's to see"),
        },
        summary="An image's thumbnail",
    )
    def get(self, request: AuthedRequest, file_id: int) -> HttpResponseBase:
        stored = selectors.file_for_reader(user=request.user, file_id=file_id)
        if not stored.thumbnail_key:
            raise NotFound("This file has no thumbnail.")
        return file_response(
            method=request.method or "GET",
            key=stored.thumbnail_key,
            content_type="image/webp",
            name=stored.name.rsplit(".", 1)[0] + "-thumbnail.webp",
            range_header="",
            if_none_match=request.headers.get("If-None-Match", ""),
            cache_control=THUMBNAIL_CACHE_CONTROL,
        )
