"""Settings for the chat server, read from the environment (and an optional `.env`).

With nothing set the server runs on the embedded default: a SQLite file, the
in-memory channel layer, a local-memory cache, DEBUG on and a generated
development secret. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and
Redis. `DEBUG=0` is production mode and refuses to start without a real
`SECRET_KEY` and `ALLOWED_HOSTS`.
"""

from __future__ import annotations

import ipaddress
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

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
    "core",
    "jobs",
    "accounts",
    "rooms",
    "files",
    "messaging",
    "notifications",
    "realtime",
    "web",
]

MIDDLEWARE = [
    # First: a request id for every log line of the request, then /metrics and request metrics.
    "core.logs.RequestLogMiddleware",
    "core.metrics.MetricsMiddleware",
    # Then every error under /api/ is JSON: Django's own refusals (a body over
    # DATA_UPLOAD_MAX_MEMORY_SIZE is a 413, a bad Host a 400) and anything else.
    "core.errors.ApiErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # After the CSP middleware, so it adds the page's ws(s):// origin before the header is built.
    "core.security.WebSocketConnectSrcMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # REQUIRE_2FA_FOR_STAFF: the admin only for staff with two-factor on.
    "accounts.middleware.StaffTwoFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: it calls the view, and again if its database connection was lost and that is safe.
    "core.dbretry.DatabaseRetryMiddleware",
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
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------

if env.str("DATABASE_URL", default=""):
    from core.dbretry import check_pooled_connection

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
            # A connection that died while idle (killed, server restarted) is
            # replaced before use, for one poll() per checkout (core.dbretry).
            "check": check_pooled_connection,
        }
    }
    _db["CONN_MAX_AGE"] = 0
    # Behind PgBouncer in transaction mode the server connection may change
    # between two statements: no server-side cursors, no prepared statements.
    if env.bool("DATABASE_TRANSACTION_POOLER", default=False):
        _db["DISABLE_SERVER_SIDE_CURSORS"] = True
        _db["OPTIONS"]["prepare_threshold"] = None
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

# Worker threads for the database calls of consumers and the event pump
# (core.db): each holds a pool connection only while it runs a call,
# so keep it below DATABASE_POOL_MAX, leaving room for HTTP requests. 0 runs
# them all on one thread, as SQLite needs (one writer at a time).
DB_WORKER_THREADS = env.int(
    "DB_WORKER_THREADS", default=8 if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" else 0
)

# --- Redis: channel layer and cache ----------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
CHANNEL_PREFIX = env.str("CHANNEL_PREFIX", default="chat")
# Which channels-redis layer carries doorbells, typing and presence: "pubsub"
# (RedisPubSubChannelLayer) or "core" (RedisChannelLayer). Pub/sub costs a
# quarter of the CPU per delivery, never drops at saturation, and subscribes
# again by itself after a Redis restart, where the core layer forgets every
# group (docs/performance.md).
CHANNEL_LAYER = env.str("CHANNEL_LAYER", default="pubsub")
# The core layer drops a channel from a group CHANNEL_GROUP_EXPIRY seconds
# after it joined (and forgets every group when Redis restarts): each
# process's channel (realtime.relay) re-joins its groups every
# CHANNEL_GROUP_REFRESH seconds, which must stay below the expiry (check chat.E001).
CHANNEL_GROUP_EXPIRY = env.int("CHANNEL_GROUP_EXPIRY", default=86400)
CHANNEL_GROUP_REFRESH = env.float("CHANNEL_GROUP_REFRESH", default=min(60.0, CHANNEL_GROUP_EXPIRY / 2))

if REDIS_URL:
    # redis-py's asyncio pool raises instead of waiting once its 100 default
    # connections are in use: bursts of handshakes got 500s.
    _redis_host = {"address": REDIS_URL, "max_connections": env.int("REDIS_MAX_CONNECTIONS", default=1000)}
    if CHANNEL_LAYER == "pubsub":
        # Groups live in each process and messages are never stored, so the core
        # layer's capacity and group expiry have nothing to bound here.
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [_redis_host], "prefix": CHANNEL_PREFIX},
            }
        }
    elif CHANNEL_LAYER == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # The core layer waits for messages in a 5 s BZPOPMIN, which redis-py
                    # 8's default 5 s socket timeout cut off: a quiet process raised
                    # TimeoutError in whichever receive held that read (a socket then
                    # closed with 1011) and could drop a message popped at that moment.
                    "hosts": [{**_redis_host, "socket_timeout": 15}],
                    "prefix": CHANNEL_PREFIX,
                    # Above CHANNEL_GROUP_REFRESH, how often each process's channel
                    # re-joins its groups.
                    "group_expiry": CHANNEL_GROUP_EXPIRY,
                    # Messages waiting per process before group_send drops more.
                    "capacity": env.int("CHANNEL_CAPACITY", default=1000),
                },
            }
        }
    else:
        raise ImproperlyConfigured(f"CHANNEL_LAYER must be 'pubsub' or 'core', not {CHANNEL_LAYER!r}.")
    CACHES = {
        "default": {
            # One Redis connection pool per process (core.cache), not one per request.
            "BACKEND": "core.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_PREFIX", default="chat"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Frames waiting for a slow WebSocket client before it is dropped with 4009
# (it resumes from its cursor), and the bytes Daphne may buffer for one socket
# before a send waits for the client to read (realtime.daphne).
WS_SEND_QUEUE_MAX = env.int("WS_SEND_QUEUE_MAX", default=2000)
WS_SEND_BUFFER_MAX = env.int("WS_SEND_BUFFER_MAX", default=256 * 1024)
# Open sockets one user may hold across every process; one more is refused (4008).
WS_MAX_SOCKETS_PER_USER = env.int("WS_MAX_SOCKETS_PER_USER", default=20)
# A resume with more events than this to replay is told resync.required instead.
RESUME_MAX_EVENTS = env.int("RESUME_MAX_EVENTS", default=2000)
# Seconds from SIGTERM after which the process exits whatever still runs
# (realtime.daphne): under Docker's default stop timeout of 10 s.
SHUTDOWN_DEADLINE = env.float("SHUTDOWN_DEADLINE", default=8.0)

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
    # Twenty spaces pass every rule above.
    {"NAME": "accounts.passwords.VisibleCharacterValidator"},
]

# The web UI's account pages (accounts.views); the admin has its own log-in page.
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Two-factor sign-in (accounts.mfa, docs/security.md#two-factor-sign-in).
# How long the ticket between a right password and the second factor lives.
MFA_TOKEN_SECONDS = env.int("MFA_TOKEN_SECONDS", default=300)
# The name authenticator apps show next to the account.
MFA_ISSUER = env.str("MFA_ISSUER", default="Chat")
# Passkeys (accounts.passkeys): the relying party. Empty: the host and origin each request came to.
WEBAUTHN_RP_ID = env.str("WEBAUTHN_RP_ID", default="")
WEBAUTHN_ORIGINS = env.list("WEBAUTHN_ORIGINS", default=[])
# Single sign-on with an OpenID Connect provider (accounts.oidc), on when OIDC_ISSUER and OIDC_CLIENT_ID are set.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="")
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
OIDC_NAME = env.str("OIDC_NAME", default="single sign-on")
# Password sign-in (and sign-up) off for everyone but staff, with a provider configured.
SSO_ONLY = env.bool("SSO_ONLY", default=False)
# What mozilla-django-oidc reads besides (the endpoints come from discovery).
OIDC_RP_SCOPES = "openid email profile"
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 5
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc-callback"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "accounts.oidc.OIDCBackend"]
# Staff reach the admin only with two-factor on (accounts.middleware).
REQUIRE_2FA_FOR_STAFF = env.bool("REQUIRE_2FA_FOR_STAFF", default=False)

# --- REST API ------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # simplejwt's bearer tokens, refused once revoked (accounts.tokens).
        "accounts.tokens.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        # The browsable API helps while developing; production answers JSON only.
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    # DRF's, refusing bodies nested too deeply to decode safely (core.parsers).
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    # The password and token routes have their own, stricter limits (core.ratelimit).
    "DEFAULT_THROTTLE_CLASSES": ["core.ratelimit.AnonThrottle", "core.ratelimit.UserThrottle"],
    # Count the connecting address, never a client-supplied X-Forwarded-For
    # (Daphne's --proxy-headers puts the real client there behind a proxy).
    "NUM_PROXIES": 0,
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
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
    "DESCRIPTION": "The chat server's REST API, described in prose in docs/api.md. "
    "Realtime traffic goes over the /ws/ WebSocket; see docs/websocket.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: the docs page must work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "rooms.models.Membership.Role",
        # Rooms had the only "kind" field first: its enum keeps the plain name.
        "KindEnum": "rooms.models.Room.Kind",
        "SecurityEventKindEnum": "accounts.models.SecurityLogEntry.Kind",
    },
    # Path ids use the bounded `id` converter (chatproject.urls): integers from 1 to core.api.ID_MAX.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}},
}

# --- Chat behaviour -------------------------------------------------------------------

MESSAGE_MAX_LENGTH = 4000
EVENT_RETENTION = timedelta(days=env.int("EVENT_RETENTION_DAYS", default=7))
# Wake event pumps on commit (locally and over the channel layer). Off, sockets
# still get every event, from the pumps' once-a-second poll: delivery tests use
# it to prove that a lost doorbell only delays.
REALTIME_DOORBELL = env.bool("REALTIME_DOORBELL", default=True)

# How often the scheduler prunes the event record (rooms.tasks); `prune_events` does it by hand.
EVENT_PRUNE_INTERVAL = timedelta(minutes=env.int("EVENT_PRUNE_INTERVAL_MINUTES", default=60))

# --- Notifications (notifications/, docs/notifications.md) -------------------------------

# A push goes out when a message is still unread this long after it was posted.
PUSH_DELAY_SECONDS = env.int("PUSH_DELAY_SECONDS", default=15)
# How often the worker's notifier reads the event record for new messages.
NOTIFIER_INTERVAL_SECONDS = env.int("NOTIFIER_INTERVAL_SECONDS", default=2)
# Settled notifications (sent, skipped) and sent emails are forgotten after this many days.
NOTIFICATION_RETENTION_DAYS = env.int("NOTIFICATION_RETENTION_DAYS", default=30)
# Web Push (VAPID, RFC 8292): URL-safe base64 of the raw P-256 keys. Unset with
# DEBUG on, a key pair is generated into VAPID_KEY_FILE on first use (kept out of git).
VAPID_PRIVATE_KEY = env.str("VAPID_PRIVATE_KEY", default="")
VAPID_PUBLIC_KEY = env.str("VAPID_PUBLIC_KEY", default="")
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="mailto:admin@localhost")
VAPID_KEY_FILE = BASE_DIR / ".dev-vapid.json"
# Push endpoints must be https; tests and local push services may allow http.
PUSH_ALLOW_HTTP = env.bool("PUSH_ALLOW_HTTP", default=False)
PUSH_TIMEOUT_SECONDS = env.float("PUSH_TIMEOUT_SECONDS", default=10.0)
# Outgoing mail: EMAIL_URL=smtp://user:pass@host:587 (smtp+tls:// STARTTLS,
# smtp+ssl:// TLS from the start).
# Without EMAIL_URL: printed to the console in debug; in production dropped, with a log line.
_mail = environ.Env.email_url_config(env.str("EMAIL_URL", default="") or "consolemail://")
if not env.str("EMAIL_URL", default="") and not DEBUG:
    _mail["EMAIL_BACKEND"] = "core.mail.UnconfiguredEmailBackend"
_mail_options = {
    "host": _mail.get("EMAIL_HOST"),
    "port": _mail.get("EMAIL_PORT"),
    "username": _mail.get("EMAIL_HOST_USER"),
    "password": _mail.get("EMAIL_HOST_PASSWORD"),
    "use_tls": _mail.get("EMAIL_USE_TLS"),
    "use_ssl": _mail.get("EMAIL_USE_SSL"),
    "timeout": env.int("EMAIL_TIMEOUT", default=30),
}
MAILERS = {
    "default": {
        "BACKEND": _mail["EMAIL_BACKEND"],
        "OPTIONS": (
            {name: value for name, value in _mail_options.items() if value is not None}
            if _mail["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
            else {}
        ),
    }
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Chat <chat@localhost>")
# The address people reach the site at, for links in emails.
SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
# New accounts confirm their email address (a link by email) before they can sign in.
EMAIL_VERIFICATION = env.bool("EMAIL_VERIFICATION", default=False)
# How often the worker gathers missed messages into emails.
EMAIL_BATCH_INTERVAL_SECONDS = env.int("EMAIL_BATCH_INTERVAL_SECONDS", default=30)

# --- Background jobs (jobs/, docs/jobs.md) ------------------------------------------------

# Django's tasks framework on the job table: enqueueing writes a row in the
# caller's transaction; `python manage.py run_worker` runs them.
TASKS = {"default": {"BACKEND": "jobs.backend.DatabaseBackend", "QUEUES": ["default"]}}
# A running job belongs to its worker this long past its last heartbeat (every
# third of it); a worker that dies mid-job has its job run again after that.
JOBS_LEASE_SECONDS = env.float("JOBS_LEASE_SECONDS", default=60.0)
# How often an idle worker looks for due jobs.
JOBS_POLL_SECONDS = env.float("JOBS_POLL_SECONDS", default=1.0)
# Succeeded jobs are forgotten after this many days; dead ones stay until retried or deleted.
JOBS_KEEP_SUCCEEDED_DAYS = env.int("JOBS_KEEP_SUCCEEDED_DAYS", default=7)
# host:port where run_worker answers /metrics (same access rule as the web's) and
# /healthz (open, for probes), e.g. 0.0.0.0:9100 in a container; empty: neither.
JOBS_WORKER_LISTEN = env.str("JOBS_WORKER_LISTEN", default="")

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

# --- Security (docs/security.md) ----------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "core.errors.csrf_failure"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Scripts, styles and everything else from this origin only: no inline script,
# no eval. core.security adds the page's ws(s):// origin to connect-src.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Production (DEBUG=0) is HTTPS only: redirect plain HTTP, send HSTS, and keep
# cookies off unencrypted connections. HTTPS_ONLY=0 turns this off (e.g. a
# production-mode smoke test on plain HTTP).
HTTPS_ONLY = env.bool("HTTPS_ONLY", default=not DEBUG)
if HTTPS_ONLY:
    SECURE_SSL_REDIRECT = True
    # Probes and the metrics scraper talk to the process directly, over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# Behind a TLS-terminating proxy, trust its X-Forwarded-Proto: https. Only
# safe when the proxy sets that header itself and nothing reaches the server
# around it; TLS_PROXY=0 when Daphne terminates TLS (make run-tls).
if env.bool("TLS_PROXY", default=not DEBUG):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Files (files/) --------------------------------------------------------------

# The local folder uploads are kept in, unless S3_BUCKET names an object store.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
S3_BUCKET = env.str("S3_BUCKET", default="")
_files_storage: dict[str, object]
if S3_BUCKET:
    _files_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
            "region_name": env.str("S3_REGION", default="") or None,
            # Downloads redirect to a URL signed for at most five minutes; objects stay private.
            "querystring_auth": True,
            "querystring_expire": 300,
            "default_acl": None,
            "file_overwrite": False,
            "addressing_style": env.str("S3_ADDRESSING_STYLE", default="path"),
            "signature_version": "s3v4",
        },
    }
else:
    _files_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": None},
    }
if S3_BUCKET:
    # Previews and the image viewer load through a 302 to the bucket: the chat page may show images from there.
    _bucket = urlsplit(env.str("S3_ENDPOINT_URL", default="") or "https://*.amazonaws.com")
    SECURE_CSP["img-src"] = [CSP.SELF, "data:", f"{_bucket.scheme}://{_bucket.netloc}"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "files": _files_storage,
}
# One upload's largest size, and what one user may keep in all (bytes).
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=25 * 1024 * 1024)
UPLOAD_QUOTA_BYTES = env.int("UPLOAD_QUOTA_BYTES", default=1024 * 1024 * 1024)
# Uploads one user may start, "count/period" (core.ratelimit).
USER_UPLOAD_RATE = env.str("USER_UPLOAD_RATE", default="30/m")
# Images larger than this many pixels are stored as plain files (a decompression bomb otherwise).
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=50_000_000)
# A deleted message's files stay this long for moderation, then leave storage.
FILE_RETENTION_DAYS = env.int("FILE_RETENTION_DAYS", default=30)
# Behind nginx ("accel": X-Accel-Redirect to /protected-files/) or Apache/Caddy ("sendfile": X-Sendfile)
# the proxy sends local files itself; empty: Django streams them.
FILES_ACCEL_REDIRECT = env.str("FILES_ACCEL_REDIRECT", default="")
FILES_ACCEL_PREFIX = env.str("FILES_ACCEL_PREFIX", default="/protected-files/")
# Uploads above this spill from memory to a temporary file as they arrive.
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

# --- Rate limits ------------------------------------------------------------------------

# Counted in the default cache (Redis with REDIS_URL, shared by every process).
# RATELIMIT_ENABLE=0 turns every HTTP limit and the sending budget off: for load tests only.
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "default"
RATELIMIT_CACHE_PREFIX = "rl:"
# Keys of the posting check's membership cache (rooms.membership_cache).
MEMBERSHIP_CACHE_PREFIX = "member:"
# django-ratelimit rates ("count/period", period like 30s, 5m, 1h) per address and per username.
AUTH_RATE_LIMITS = {
    "register": {"ip": "30/h", "username": "10/h"},
    "login": {"ip": "30/m", "username": "10/5m"},
    "refresh": {"ip": "60/m", "username": "30/m"},
    "password": {"ip": "30/h", "username": "10/h"},
    # Wrong second-factor codes (accounts.mfa): only failures count, per account ("user:<id>").
    "mfa": {"ip": "30/10m", "username": "5/5m"},
    # Password reset emails: per address asked for ("username" is the email here), and tries of a token.
    "password_reset": {"ip": "20/h", "username": "5/h"},
    "password_reset_confirm": {"ip": "30/h"},
}
# What one user may send, over REST and all their sockets together: messages
# posted and typing notices, "count/period" with a fixed window (core.ratelimit).
USER_SEND_RATE = env.str("USER_SEND_RATE", default="30/10s")
# DRF throttles on every other API route (core.ratelimit).
API_THROTTLE_RATES = {
    "anon": env.str("API_RATE_ANON", default="120/min"),
    "user": env.str("API_RATE_USER", default="1200/min"),
}

# --- Logging (core.logs) --------------------------------------------------------

# JSON lines in production, aligned text on the embedded default.
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'console', not {LOG_FORMAT!r}.")
LOGGING_CONFIG = "core.logs.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"structured": {"()": "core.logs.formatter", "log_format": LOG_FORMAT}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own handlers would print lines twice, unformatted: everything goes to the root.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        # SQL parameters carry message bodies and password hashes: never log queries.
        "django.db.backends": {"handlers": [], "level": "INFO", "propagate": True},
    },
}

# --- Metrics (core.metrics) ------------------------------------------------------

# With DEBUG off, /metrics answers only this bearer token or these networks (CIDRs).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = [cidr.strip() for cidr in env.list("METRICS_ALLOWED_NETWORKS", default=[]) if cidr.strip()]
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network (CIDR).") from None

# --- Error tracking (core.sentry) ------------------------------------------------

SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from core import sentry

    sentry.init(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="development" if DEBUG else "production"),
        release=env.str("SENTRY_RELEASE", default=env.str("CHAT_VERSION", default="")),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )
