"""Migrate the provider's database and create its people and the chat server's client (run as a script)."""

from __future__ import annotations

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accounts.tests.oidc_provider.settings")
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

call_command("migrate", verbosity=0)
spec = json.loads(sys.argv[1])
for person in spec["people"]:
    User.objects.create_user(
        username=person["username"],
        email=person["email"],
        password=person["password"],
        last_name=person.get("last_name", ""),
    )
Application.objects.create(
    name="chat",
    client_id=spec["client_id"],
    client_secret=spec["client_secret"],
    hash_client_secret=False,
    client_type=Application.CLIENT_CONFIDENTIAL,
    authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
    redirect_uris=spec["redirect_uri"],
    algorithm=Application.RS256_ALGORITHM,
    skip_authorization=True,
)
