# avcrowd — the two commands a new user needs:
#   make run    serve the demo on http://127.0.0.1:8000 (SQLite, tasks in-process, media under var/)
#   make test   run the test suite (PostgreSQL/Redis when DATABASE_URL/CELERY_BROKER_URL are set)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test smoke lint venv venv-dev demo migrate check bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, alone, so that nothing else can pull a CUDA build of it.
$(VENV)/.runtime-installed: requirements.txt | $(PY)
	$(PIP) install -q "$$(grep -E '^torch==' requirements.txt)"
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(PIP) install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime-installed
venv-dev: $(VENV)/.dev-installed

# Links printed by the demo (HIT URLs, the MTurk stand-in) point at the server `make run` starts.
export PUBLIC_BASE_URL ?= http://$(HOST):$(PORT)

# Development settings for this checkout, read by config/settings.py, so that every `python manage.py ...` of the
# README works in a new shell. Written once; an existing .env (e.g. docker compose's) is left alone.
.env:
	@printf '%s\n' "# Written by make run: development settings of this checkout (config/settings.py reads them)." \
	  "# Not for production: docker compose needs its own .env (cp .env.example .env; see README, Deployment)." \
	  "DEBUG=1" "PUBLIC_BASE_URL=$(PUBLIC_BASE_URL)" > $@
	@echo "make: wrote .env (development settings for python manage.py ...)"

migrate: venv .env
	AVCROWD_DEV=1 $(PY) manage.py migrate --noinput -v0

demo: migrate
	AVCROWD_DEV=1 $(PY) manage.py load_taxonomy
	AVCROWD_DEV=1 $(PY) manage.py seed_demo

run: demo
	@echo "avcrowd: serving on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"
	DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

test: venv-dev
	@if [ -n "$$DATABASE_URL" ]; then echo "make test: database = $${DATABASE_URL%%://*} ($$DATABASE_URL)"; \
	 else echo "make test: database = SQLite (set DATABASE_URL for PostgreSQL)"; fi
	@if [ -n "$$CELERY_BROKER_URL" ]; then echo "make test: celery broker = $$CELERY_BROKER_URL (real worker tests run)"; \
	 else echo "make test: celery = in-process (set CELERY_BROKER_URL for Redis + a real worker)"; fi
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The production stack on this machine: DEBUG=0 under gunicorn (TLS, WhiteNoise), a Celery worker and beat on
# PostgreSQL and Redis, an S3 server (moto), driven in headless Chromium; also run by .ci/run (smoke/run.py).
smoke: venv-dev
	$(PY) smoke/run.py

# Lint, format and the one-way import contract (.importlinter); part of `make test`.
lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

check: venv
	AVCROWD_DEV=1 $(PY) manage.py makemigrations --check --dry-run
	DEBUG=0 SECRET_KEY=$$($(PY) -c 'import secrets;print(secrets.token_urlsafe(50))') ALLOWED_HOSTS=avcrowd.example.org \
	  $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf var/ staticfiles/ .pytest_cache
