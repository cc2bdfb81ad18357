"""Settings for the chat server, read from the environment (and an optional `.env`).

With nothing set the server runs on the embedded default: a SQLite file, the
in-memory channel layer, a local-memory cache, DEBUG on and a generated
development secret. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and
Redis. `DEBUG=0` is production mode and refuses to start without a real
`SECRET_KEY` and `ALLOWED_HOSTS`.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Mode and secrets ----------------------------------------------------------

DEBUG = env.bool("DEBUG", default=True)
TESTING = env.bool("TESTING", default=False)
DEV_SECRET_FILE = BASE_DIR / ".dev-secret"


def _development_secret() -> str:
    """Return a per-checkout random secret, created on first use and kept out of git."""
    if not DEV_SECRET_FILE.exists():
        DEV_SECRET_FILE.write_text(secrets.token_urlsafe(50))
        DEV_SECRET_FILE.chmod(0o600)
    return DEV_SECRET_FILE.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])

if DEBUG:
    SECRET_KEY = SECRET_KEY or _development_secret()
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]", "testserver"]
else:
    # Production must never run on a guessable key or accept any Host header.
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured(
            "DEBUG is off, so SECRET_KEY must be set to a random string of at least 50 "
            'characters (python -c "import secrets; print(secrets.token_urlsafe(50))").'
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "DEBUG is off, so ALLOWED_HOSTS must list the host names this server answers to "
            "(comma-separated, e.g. ALLOWED_HOSTS=chat.example.com)."
        )

# --- Applications --------------------------------------------------------------

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "rooms",
    "messaging",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------

if env.str("DATABASE_URL", default=""):
    _db = env.db_url("DATABASE_URL")
    if _db["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL (or unset for SQLite).")
    _db["OPTIONS"] = {
        # psycopg 3's pool, owned by Django: connections are reused across
        # requests and database_sync_to_async calls without a per-call connect.
        "pool": {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=20),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
    }
    _db["CONN_MAX_AGE"] = 0
    DATABASES = {"default": _db}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two writers queue
                # instead of failing with "database is locked" on upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and cache ----------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
CHANNEL_PREFIX = env.str("CHANNEL_PREFIX", default="chat")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's asyncio pool raises instead of waiting once its 100
                # default connections are in use: bursts of handshakes got 500s.
                "hosts": [{"address": REDIS_URL, "max_connections": env.int("REDIS_MAX_CONNECTIONS", default=1000)}],
                "prefix": CHANNEL_PREFIX,
                # Above the longest time a socket goes without re-joining its
                # groups (they are re-joined on every membership change and
                # by the doorbell listener every minute).
                "group_expiry": env.int("CHANNEL_GROUP_EXPIRY", default=86400),
                "capacity": env.int("CHANNEL_CAPACITY", default=1000),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_PREFIX", default="chat"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts and authentication ---------------------------------------------------

AUTH_USER_MODEL = "accounts.User"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING:
    # Argon2 by design costs tens of milliseconds per hash; tests create many users.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/admin/login/"

# --- REST API ------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        # The browsable API helps while developing; production answers JSON only.
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chatproject.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=14)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Chat API",
    "DESCRIPTION": "REST half of the chat server's client contract (API.md). "
    "Realtime traffic goes over the /ws/ WebSocket; see docs/websocket.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: the docs page must work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"RoleEnum": "rooms.models.Membership.Role"},
    # Path ids use the bounded `id` converter (chatproject.urls); document them as integers.
    "PATH_CONVERTER_OVERRIDES": {"id": int},
}

# --- Chat behaviour -------------------------------------------------------------------

MESSAGE_MAX_LENGTH = 4000
EVENT_RETENTION = timedelta(days=env.int("EVENT_RETENTION_DAYS", default=7))
# Delivery tests only, honoured in DEBUG: "marker:seconds" (see rooms.events._test_hold).
TEST_HOLD_BEFORE_COMMIT = env.str("CHAT_TEST_HOLD_BEFORE_COMMIT", default="")

# --- Internationalisation and static files ------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG
# Serve straight from the app folders while developing, without collectstatic.
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security -------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Logging --------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own console handler would print every line twice.
    "loggers": {"django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
