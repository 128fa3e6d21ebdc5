# channelhub: the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run the hub on SQLite with the offline demo (provider emulators included)
run: $(STAMP)
	$(BIN)/channelhub migrate --config deploy/demo.toml
	$(BIN)/channelhub serve --config deploy/demo.toml

## install and run the whole test suite, with lint and type checks first (the 25 slowest tests are listed at the end:
## the suite is kept under 30 minutes on a 2-core machine)
test: $(STAMP) check
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=25 $(PYTEST_ARGS)

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## regenerate migration 0001 from hub/store/tables.py (pre-release only)
schema: $(STAMP)
	$(BIN)/python scripts/regenerate_initial_migration.py

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
