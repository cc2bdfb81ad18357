from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from accounts.api.serializers import UserSerializer
from core.api import ID_MAX, StrictSerializer, TrimmedText, page_serializer
from files.api.serializers import FileSerializer
from files.services import ATTACHMENTS_MAX
from messaging.services import CLIENT_ID_MAX, EMOJI_MAX


class ReactionSerializer(serializers.Serializer):
    emoji = serializers.CharField()
    count = serializers.IntegerField()
    users = serializers.ListField(child=serializers.IntegerField())


class MessageSerializer(serializers.Serializer):
    """Output shape of a message (documentation; payloads are built by messaging.payloads)."""

    id = serializers.IntegerField()
    room = serializers.IntegerField()
    author = UserSerializer()
    body = serializers.CharField()
    html = serializers.CharField()
    client_id = serializers.CharField(allow_null=True)
    parent = serializers.IntegerField(allow_null=True)  # type: ignore[assignment]  # a field, not Field.parent
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    deleted = serializers.BooleanField()
    reactions = ReactionSerializer(many=True)
    mentions = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Ids of the users the message @mentions, ascending; a mention is only ever read from here",
    )
    attachments = FileSerializer(many=True, help_text="Files attached to the message, in order (empty when none)")
    broadcast = serializers.BooleanField(help_text="A reply also listed in the room's history")
    reply_count = serializers.IntegerField(help_text="Live replies in the thread this message starts")
    last_reply_at = serializers.DateTimeField(allow_null=True)
    last_repliers = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids of the authors of the newest replies, newest first (at most 3)"
    )
    pinned = serializers.BooleanField()


MessagePageSerializer = page_serializer("MessagePageSerializer", MessageSerializer)


class EditSerializer(serializers.Serializer):
    body = serializers.CharField()
    edited_at = serializers.DateTimeField()


class ReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    message = serializers.IntegerField()
    reason = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers instead of turning them into text, so `{"body": 5}` is a 400."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class MessagePostInput(StrictSerializer):
    # Length and emptiness are checked by the service, with the same messages
    # over REST and WebSocket; the cap here only bounds what is parsed.
    body = TrimmedText(
        max_length=100_000,
        allow_blank=True,
        trim_whitespace=False,
        limit=settings.MESSAGE_MAX_LENGTH,
        required=False,
        help_text="May be empty or left out when attachments are given",
    )
    attachments = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX),
        required=False,
        max_length=ATTACHMENTS_MAX,
        help_text="Ids of the caller's uploads into this room, not attached before, in the order to show",
    )
    client_id = StrictCharField(max_length=CLIENT_ID_MAX, required=False, allow_null=True, allow_blank=True)
    parent = serializers.IntegerField(  # type: ignore[assignment]  # a field, not Field.parent
        min_value=1, max_value=ID_MAX, required=False, allow_null=True
    )
    broadcast = serializers.BooleanField(
        required=False, default=False, help_text="With `parent`: also list the reply in the room's history"
    )


class MessageEditInput(StrictSerializer):
    body = TrimmedText(max_length=100_000, allow_blank=True, trim_whitespace=False, limit=settings.MESSAGE_MAX_LENGTH)


class ReactionInput(StrictSerializer):
    emoji = TrimmedText(max_length=64, limit=EMOJI_MAX)


class ReportInput(StrictSerializer):
    reason = StrictCharField(max_length=1000, allow_blank=True)


class ReadInput(StrictSerializer):
    message_id = serializers.IntegerField(min_value=1, max_value=ID_MAX)


class ReadMovedSerializer(serializers.Serializer):
    room = serializers.IntegerField()
    message_id = serializers.IntegerField(help_text="The room's newest message: the read marker now")


class ReadAllSerializer(serializers.Serializer):
    rooms = ReadMovedSerializer(many=True, help_text="The rooms whose read marker moved")


class ThreadSerializer(serializers.Serializer):
    root = MessageSerializer()
    results = MessageSerializer(many=True)
    has_more = serializers.BooleanField()
    following = serializers.BooleanField(help_text="Whether the caller follows this thread")
    last_read_id = serializers.IntegerField(help_text="The caller's read position in this thread (0: none)")


class FollowedThreadSerializer(serializers.Serializer):
    root = MessageSerializer()
    unread_count = serializers.IntegerField()
    last_read_id = serializers.IntegerField()


FollowedThreadPageSerializer = page_serializer("FollowedThreadPageSerializer", FollowedThreadSerializer)
