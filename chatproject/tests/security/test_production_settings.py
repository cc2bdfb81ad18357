"""Production settings (DEBUG=0) are HTTPS-only and `check --deploy` has nothing to say (issue 5, item 1)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "TESTING") and not key.startswith("PYTEST")
    }
    env.update(DJANGO_SETTINGS_MODULE="chatproject.settings", **extra)
    return env


def production_env(**extra: str) -> dict[str, str]:
    return _env(DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="chat.example.com", **extra)


def settings_in(env: dict[str, str], *names: str) -> dict[str, object]:
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name, None) for name in {list(names)!r}}}, default=str))"
    )
    output = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("services", ["embedded", "postgres+redis"])
def test_check_deploy_reports_nothing_for_a_production_environment(services: str) -> None:
    extra = {}
    if services != "embedded":
        # Only the settings are read: nothing connects to these.
        extra = {"DATABASE_URL": "postgres://chat@db.internal:5432/chat", "REDIS_URL": "redis://cache.internal:6379/0"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=production_env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_production_turns_on_https_only_settings() -> None:
    values = settings_in(
        production_env(),
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SECURE_PROXY_SSL_HEADER",
        "X_FRAME_OPTIONS",
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "SECURE_REFERRER_POLICY",
        "RATELIMIT_ENABLE",
        "PASSWORD_HASHERS",
    )
    assert values["SECURE_SSL_REDIRECT"] is True
    assert int(values["SECURE_HSTS_SECONDS"]) >= 31_536_000  # type: ignore[call-overload]
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["RATELIMIT_ENABLE"] is True
    # Argon2 hashes every new password (TESTING is not set here).
    assert values["PASSWORD_HASHERS"][0] == "django.contrib.auth.hashers.Argon2PasswordHasher"  # type: ignore[index]


def test_daphne_terminating_tls_trusts_no_proxy_header() -> None:
    values = settings_in(production_env(TLS_PROXY="0"), "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT")
    assert values == {"SECURE_PROXY_SSL_HEADER": None, "SECURE_SSL_REDIRECT": True}


def test_development_stays_on_plain_http() -> None:
    values = settings_in(_env(DEBUG="1"), "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER")
    assert values == {"SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False, "SECURE_PROXY_SSL_HEADER": None}


def test_ratelimit_enable_is_read_from_the_environment() -> None:
    assert settings_in(_env(RATELIMIT_ENABLE="0"), "RATELIMIT_ENABLE") == {"RATELIMIT_ENABLE": False}
