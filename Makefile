# Two commands do all set-up on a fresh machine with only Python 3.11+:
#   make demo       create .venv, install, run the daily flow on Prefect (SQLite + the outbox channel)
#   make test       the same set-up, `make lint`, then the whole test suite with coverage
# and while working:
#   make lint       ruff (lint + format check), mypy, import-linter's layer contracts
#   make test-fast  the tests that need neither a database server nor Prefect: seconds, not minutes
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# A fresh PREFECT_HOME migrates its database at the first start: give it time on a busy machine.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: demo test test-fast bench bench-workspace lint mypy install lock clean

# Every machine installs exactly the versions CI tested: requirements.lock pins the whole tree
# (pyproject.toml says what we need, the lock what we run). `make lock` refreshes it.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

lock: $(STAMP)
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --upgrade --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m flows.demo

# pytest fails the target on any failure and also when it collects no test at all (exit 5).
# Coverage is measured here rather than in pytest's addopts, so that test-fast stays fast.
COVERAGE := --cov=techtouch --cov=flows --cov=tasks --cov-report=term:skip-covered
# The unit tier: no database server, no Prefect server, no browser (measured: about 15 s).
FAST_TESTS := tests/unit tests/test_deployments.py tests/integration/test_outbox.py

test: lint
	$(BIN)/python -m pytest $(COVERAGE)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(FAST_TESTS)

# One table (and benchmarks/results/*.json): BENCH_SCALE=smoke|100k|1m, BENCH_DB=sqlite|postgresql.
BENCH_SCALE ?= 100k
BENCH_DB    ?= sqlite
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --scale $(BENCH_SCALE) --db $(BENCH_DB)

# Server time of /reports, a CSM's inbox (500 open CTAs) and a CTA page (benchmarks/results/workspace-*.json).
BENCH_ACCOUNTS ?= 100000
bench-workspace: $(STAMP)
	$(BIN)/python benchmarks/workspace.py --accounts $(BENCH_ACCOUNTS) --db $(BENCH_DB)

# mypy checks techtouch, flows and tasks ([tool.mypy] in pyproject.toml), strict on the domain.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

mypy: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) techtouch.db outbox demo
