# Every target sets up its own virtual environment first, so a fresh clone needs only
# Python 3.11+ and make.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
            && echo $$p && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench docs clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "portalctl needs Python 3.11 or newer on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The main job on the embedded SQLite default, in ./demo/ (recreated each time).
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## The test suite: SQLite always; PostgreSQL too when PORTALCTL_TEST_DATABASE_URL is set.
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict portalctl/core portalctl/domain
	$(BIN)/mypy portalctl/cli

## The command reference, generated from the commands themselves.
docs: $(STAMP)
	$(BIN)/python -m portalctl.cli.reference > docs/reference.md

## Figures, not assertions: start-up, look-ups, bulk imports, mail, consolidation.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache .hypothesis *.egg-info
