# The two commands of the README:
#   make run   install what is needed, migrate, load the demo roster, serve on :8000 (SQLite default)
#   make test  install what is needed, check the import layers, run the whole suite on SQLite, then on PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
export TEST_POSTGRES_URL

.PHONY: run install install-test test test-sqlite test-postgres demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt tests/requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r tests/requirements.txt
	touch $@ $(VENV)/.installed

# livekit-client for the agent console and Twilio's Voice SDK for the public call page, from the npm registry,
# served by the app (one build copies both).
app/static/vendor/livekit-client.umd.js app/static/vendor/twilio.min.js &: package.json package-lock.json
	npm ci --no-audit --no-fund
	npm run build

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install app/static/vendor/livekit-client.umd.js app/static/vendor/twilio.min.js
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi roster load --if-empty
	$(BIN)/flask --app wsgi users bootstrap
	$(BIN)/gunicorn -c app/gunicorn_conf.py wsgi:app

demo: install
	$(BIN)/flask --app wsgi demo

test: install-test app/static/vendor/livekit-client.umd.js app/static/vendor/twilio.min.js
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/lint-imports
	TEST_DATABASE=sqlite $(BIN)/python -m pytest
	TEST_DATABASE=postgres $(BIN)/python -m pytest -m "not browser"
