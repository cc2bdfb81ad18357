# syntax=docker/dockerfile:1
#
# Chat server image: `docker build -t chat .`, then for example
#   docker run -e SECRET_KEY=... -e ALLOWED_HOSTS=chat.example.com \
#              -e DATABASE_URL=postgres://... -e REDIS_URL=redis://... -e MIGRATE=1 -p 8000:8000 chat
# Without DATABASE_URL it keeps a SQLite file in /app/data (mount a volume there).

# --- Builder: compile every pinned dependency into a wheel ------------------------

FROM python:3.13-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY requirements.txt .
RUN pip wheel --wheel-dir /wheels --requirement requirements.txt

# --- Runtime: the slim interpreter, the wheels, the code, a non-root user ---------

FROM python:3.13-slim AS runtime

# The release tag (CI passes it); reported to Sentry as the release.
ARG CHAT_VERSION=dev
LABEL org.opencontainers.image.title="chat-server" \
      org.opencontainers.image.version="${CHAT_VERSION}"

ENV CHAT_VERSION=${CHAT_VERSION} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBUG=0 \
    SQLITE_PATH=/app/data/db.sqlite3 \
    MEDIA_ROOT=/app/data/media

# A fixed uid, so orchestrators can check runAsNonRoot (deploy/k8s runs as 10001).
RUN groupadd --system --gid 10001 chat \
    && useradd --system --uid 10001 --gid chat --home-dir /app --no-create-home --shell /usr/sbin/nologin chat

WORKDIR /app

# Dependencies before code, so a code change does not reinstall them.
COPY requirements.txt .
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels --requirement requirements.txt

# The code stays owned by root: the server process cannot rewrite it.
COPY manage.py ./
COPY chatproject ./chatproject
COPY core ./core
COPY jobs ./jobs
COPY accounts ./accounts
COPY rooms ./rooms
COPY files ./files
COPY messaging ./messaging
COPY notifications ./notifications
COPY realtime ./realtime
COPY web ./web
COPY templates ./templates
COPY static ./static
COPY deploy/entrypoint.sh deploy/healthcheck.py ./deploy/

# The secret and host here exist only for this build step; the image carries neither.
RUN DEBUG=0 \
    SECRET_KEY=collectstatic-only-build-secret-never-used-to-sign-anything-0123456789 \
    ALLOWED_HOSTS=build.invalid \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/data/media \
    && chown -R chat:chat /app/data

USER chat

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

ENTRYPOINT ["/app/deploy/entrypoint.sh"]
# --verbosity 0 drops Daphne's plain-text access log: the server logs every
# request as a JSON line itself (core.logs).
CMD ["daphne", "-e", "tcp:port=8000:interface=0.0.0.0:backlog=1024", \
     "--websocket-max-message-size", "131072", "--websocket-max-frame-size", "131072", \
     "--websocket_connect_timeout", "20", "--verbosity", "0", "chatproject.asgi:application"]
