from __future__ import annotations

from rest_framework import serializers

from core.api import StrictSerializer


class FileSerializer(serializers.Serializer):
    """Output shape of a file (documentation; payloads are built by files.payloads)."""

    id = serializers.IntegerField()
    name = serializers.CharField(help_text="The uploaded name, for display only")
    content_type = serializers.CharField(help_text="Decided from the file's bytes")
    size = serializers.IntegerField(help_text="Bytes, after images are re-encoded without metadata")
    url = serializers.CharField(help_text="Path of the download on this server")
    thumbnail_url = serializers.CharField(allow_null=True, help_text="Null for non-images and until it exists")
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)


class UploadInput(StrictSerializer):
    file = serializers.FileField(help_text="The file, as multipart form data")
