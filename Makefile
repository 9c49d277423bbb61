# The two set-up commands of the README. Both create .venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"

# Run the API on the embedded default (SQLite file var/zonechief.sqlite, demo reports; no server to set up).
run: install
	$(BIN)/zonechief serve --demo

# Install everything, start PostgreSQL/PostGIS where possible, run the whole suite.
test: install-test
	bash scripts/test.sh
