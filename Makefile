# spendcast: `make demo` runs the whole job on embedded defaults, `make test` checks everything.
# Installs come from the hashed lock files (see README, "Reproducible installs"); `make lock`
# refreshes them from pyproject.toml.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_LOCK := requirements-dev.lock
RUNTIME_LOCK := requirements.lock
UV_VERSION := 0.13.9
# What the locks hold besides pyproject.toml's dependencies: the build backend (installs use
# --no-build-isolation, so the project is built with the locked setuptools too).
BUILD_REQS := 'setuptools>=69\nwheel\n'
UV_COMPILE := $(BIN)/uv pip compile pyproject.toml - --universal --python-version 3.11 \
	--generate-hashes --quiet --custom-compile-command 'make lock'

.PHONY: demo test lint typecheck pytest install lock lock-upgrade clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(DEV_LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/spendcast demo

lint: $(STAMP)
	$(BIN)/ruff check forecasting service cli tests benchmarks
	$(BIN)/ruff format --check forecasting service cli tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# Re-resolve the locks from pyproject.toml, keeping every pin that still fits (a new extra or
# dependency is added, nothing else moves); `make lock-upgrade` moves every pin to the newest.
# Every extra is in the dev lock; the runtime lock (the Docker image) is the same pins, less
# the extras.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	printf $(BUILD_REQS) | $(UV_COMPILE) $(UV_ARGS) --all-extras -o $(DEV_LOCK)
	printf $(BUILD_REQS) | $(UV_COMPILE) -c $(DEV_LOCK) -o $(RUNTIME_LOCK)

lock-upgrade:
	$(MAKE) lock UV_ARGS=--upgrade

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
