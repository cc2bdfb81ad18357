# Two commands set everything up on a fresh machine: `make run` and `make test`.
# PYTHON=/path/to/python3.13 overrides the interpreter the virtualenv is built from.

VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k search -x"`.
PYTEST_ARGS ?=

.PHONY: run test venv install migrate lint format typecheck clean superuser

# A listen backlog of 1024 (Twisted's default of 50 overflows under bursts of
# handshakes) and API.md's 64 KiB cap on WebSocket frames.
DAPHNE_ARGS ?= --websocket-max-message-size 65536 --websocket-max-frame-size 65536

run: install migrate ## Serve on http://$(HOST):$(PORT) with Daphne
	$(BIN)/daphne -e "tcp:port=$(PORT):interface=$(HOST):backlog=1024" $(DAPHNE_ARGS) chatproject.asgi:application

test: install ## Run the whole test suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)
	$(BIN)/pytest $(PYTEST_ARGS)

venv: $(BIN)/python

$(BIN)/python:
	@py="$$(./scripts/find-python)" && echo "Creating $(VENV) with $$py" && "$$py" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when a requirements file changes.
install: $(VENV)/.installed

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

migrate: install
	$(BIN)/python manage.py migrate --noinput

superuser: install migrate ## Create an admin account for /admin/
	$(BIN)/python manage.py createsuperuser

lint: install ## ruff check, format check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache

typecheck: install
	$(BIN)/mypy .
