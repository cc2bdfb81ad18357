"""The mail backend of a production server without EMAIL_URL: nothing is sent, and the log says so.

Django's console backend is for development (its deploy check refuses it),
and would write password-reset links into production logs. This one logs
only that an email was dropped, and to how many recipients.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger("chat.mail")


class UnconfiguredEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[Any]) -> int:
        for message in email_messages:
            logger.warning(
                "mail.not_configured", extra={"subject": message.subject, "recipients": len(message.recipients())}
            )
        return 0
