# Two commands set everything up on a fresh machine: `make run` and `make test`.
# PYTHON=/path/to/python3.13 overrides the interpreter the virtualenv is built from.
# `make run` installs only what serving needs (requirements.txt); the test,
# lint and audit targets add the development tools (requirements-dev.txt).

VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k search -x"`.
PYTEST_ARGS ?=
# pytest-xdist workers for the tests that may share the machine (`auto`: one a core; 0: one process).
TEST_WORKERS ?= auto
# COVERAGE=1: measure line coverage and fail below the floor in pyproject.toml.
COVERAGE ?=

.PHONY: run run-tls tls-cert test audit screenshots venv install install-dev migrate lint format typecheck clean superuser up down

# A listen backlog of 1024 (Twisted's default of 50 overflows under bursts of
# handshakes). Daphne's own cap bounds memory (a frame over it is discarded
# unread and closed with 1009, realtime/daphne.py); the consumer enforces the
# protocol's 64 KiB per frame (docs/websocket.md) and closes with 1009.
# Handshakes get 20 s (Daphne's command line gives 5): in a reconnect storm one
# dropped at 5 s had done its work for nothing, and its client came back for
# more (docs/performance.md).
DAPHNE_ARGS ?= --websocket-max-message-size 131072 --websocket-max-frame-size 131072 --websocket_connect_timeout 20

# The job worker runs beside the server (docs/jobs.md); Ctrl-C stops both.
SUPERVISE = $(BIN)/python scripts/supervise "worker=$(BIN)/python manage.py run_worker"

run: install migrate ## Serve on http://$(HOST):$(PORT) with Daphne, and run the job worker
	$(SUPERVISE) "web=$(BIN)/daphne -e tcp:port=$(PORT):interface=$(HOST):backlog=1024 $(DAPHNE_ARGS) chatproject.asgi:application"

# HTTPS and WSS served by Daphne itself, with a certificate from `make tls-cert`
# (or your own: make run-tls TLS_CERT=... TLS_KEY=...). Daphne terminates TLS,
# so no proxy header is trusted (TLS_PROXY=0).
TLS_PORT ?= 8443
TLS_CERT ?= .tls/localhost.pem
TLS_KEY ?= .tls/localhost-key.pem

run-tls: install migrate $(TLS_CERT) ## Serve on https://localhost:$(TLS_PORT) (and wss://) with Daphne
	TLS_PROXY=0 $(SUPERVISE) "web=$(BIN)/daphne -e ssl:port=$(TLS_PORT):interface=$(HOST):backlog=1024:privateKey=$(TLS_KEY):certKey=$(TLS_CERT) \
		$(DAPHNE_ARGS) chatproject.asgi:application"

tls-cert: $(TLS_CERT) ## A self-signed certificate for localhost, 127.0.0.1 and ::1 in .tls/

$(TLS_CERT): | $(VENV)/.installed-run
	$(BIN)/python scripts/make-dev-cert --cert $(TLS_CERT) --key $(TLS_KEY)

# Two pytest runs: the `serial` tests (real servers, kills, timings) alone,
# then the rest on TEST_WORKERS processes (scripts/run-tests).
test: install-dev ## Run the whole test suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)
	BIN=$(BIN) TEST_WORKERS=$(TEST_WORKERS) COVERAGE=$(COVERAGE) ./scripts/run-tests $(PYTEST_ARGS)

# Asks the package index, so CI does not run it and the suite does not depend on it.
audit: install-dev ## Known vulnerabilities in the pins (pip-audit) and Django's newest patch release
	$(BIN)/python scripts/audit.py

# Photographs of the web UI for the README, light and dark, taken with Debian's
# Chromium (apt-get install chromium fonts-noto-color-emoji) on a seeded demo.
screenshots: install-dev ## Regenerate docs/screenshots/*.png
	$(BIN)/python scripts/screenshots.py

venv: $(BIN)/python

$(BIN)/python:
	@py="$$(./scripts/find-python)" && echo "Creating $(VENV) with $$py" && "$$py" -m venv $(VENV)

# Reinstall only when a requirements file changes: what serving needs, then the development tools.
install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-run: $(BIN)/python requirements.txt
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-run requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

migrate: install
	$(BIN)/python manage.py migrate --noinput

superuser: install migrate ## Create an admin account for /admin/
	$(BIN)/python manage.py createsuperuser

lint: install-dev ## ruff check, format check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .mypy_cache .coverage .coverage.* htmlcov

typecheck: install-dev
	$(BIN)/mypy .

# The whole stack with Docker Compose (docs/deployment.md): .env with fresh
# secrets the first time, then build and start everything.
up: ## HTTPS on https://localhost/, Grafana on https://localhost/grafana/
	./scripts/init-env
	docker compose up --build --detach
	@echo "Chat: $$(sed -n 's/^PUBLIC_URL=//p' .env)/   Grafana: $$(sed -n 's/^PUBLIC_URL=//p' .env)/grafana/ (admin, GRAFANA_ADMIN_PASSWORD in .env)"

down: ## Stop the Compose stack (the data volumes stay)
	docker compose down
