#!/bin/sh
# Container entrypoint: wait for the database, migrate when MIGRATE=1, then run
# the given command (by default the Daphne ASGI server on port 8000).
#
#   DB_WAIT_ATTEMPTS  how many times to try the database before giving up (30)
#   DB_WAIT_SECONDS   pause between two attempts (2)
#   MIGRATE           1 to apply migrations before starting (0)
set -eu

cd "$(dirname "$0")/.."

DB_WAIT_ATTEMPTS="${DB_WAIT_ATTEMPTS:-30}"
DB_WAIT_SECONDS="${DB_WAIT_SECONDS:-2}"

# Connect, rather than only `check --database default`, which opens no
# connection on PostgreSQL: the server must not start before the database answers.
database_ready() {
    python manage.py shell --no-imports -c "from django.db import connection; connection.ensure_connection()"
}

attempt=1
while ! output=$(database_ready 2>&1); do
    if [ "$attempt" -ge "$DB_WAIT_ATTEMPTS" ]; then
        echo "entrypoint: the database did not answer after $attempt attempts:" >&2
        printf '%s\n' "$output" >&2
        exit 1
    fi
    echo "entrypoint: waiting for the database (attempt $attempt of $DB_WAIT_ATTEMPTS)" >&2
    attempt=$((attempt + 1))
    sleep "$DB_WAIT_SECONDS"
done
echo "entrypoint: the database is ready" >&2

# Code and configuration errors do not go away by waiting: stop at once.
python manage.py check --database default

if [ "${MIGRATE:-0}" = "1" ]; then
    python manage.py migrate --noinput
fi

if [ "$#" -eq 0 ]; then
    set -- daphne -e tcp:port=8000:interface=0.0.0.0:backlog=1024 \
        --websocket-max-message-size 131072 --websocket-max-frame-size 131072 --websocket_connect_timeout 20 \
        --verbosity 0 \
        chatproject.asgi:application
fi
exec "$@"
