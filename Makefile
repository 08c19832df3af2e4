# Every target sets up what it needs: a fresh clone runs `make run` or `make test` directly.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= data
DEFAULT_DATA := $(DATA_DIR)/landing/.complete

export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
export PREFECT_HOME ?= $(abspath .prefect)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export KR_DATA_DIR ?= $(abspath $(DATA_DIR))

.PHONY: run test lint layers bench java-check browser-check postgres-check venv clean bench-pipelinedp

java-check:
	@scripts/check_java.sh

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ERROR: Python 3.11+ is needed (found %s)" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

venv: java-check $(STAMP)

# Only the report-page browser tests need it; they skip, saying so, where it cannot be had
# (under CI=true, or as root with apt, it must be had: the script fails).
browser-check:
	@scripts/ensure_chromium.sh

# The ledger's tests run against a throwaway PostgreSQL server as well as SQLite; they skip,
# saying so, where no server can be had (under CI=true, or as root with apt: the script fails).
postgres-check:
	@scripts/ensure_postgres.sh

# The embedded default: synthetic data for all five sources, made once.
$(DEFAULT_DATA): | venv
	$(VENV)/bin/kr-reports generate --subscribers 5000 --days 2 --bad-row-rate 0.01 --out $(DATA_DIR)/landing

run: venv $(DEFAULT_DATA)
	$(VENV)/bin/kr-reports run --demo

test: venv browser-check postgres-check layers
	$(PY) -m pytest

# The import contract in pyproject.toml: no module imports from a layer above its own.
layers: venv
	$(VENV)/bin/lint-imports

lint: venv layers
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) bench/bench_pipeline.py

clean:
	rm -rf $(DATA_DIR) out .prefect spark-warehouse

# PipelineDP comparison: a separate venv, so pipeline-dp never enters the product's
# dependencies. Its Spark workers run Python and must import pipeline_dp, hence the
# bench venv's interpreter for PYSPARK_PYTHON. Figures: BENCH_ARGS="--rows 10000000".
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
BENCH_ARGS ?=

$(BENCH_STAMP): pyproject.toml constraints.txt bench/requirements-pipelinedp.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ERROR: Python 3.11+ is needed (found %s)" % sys.version.split()[0])'
	@test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -c constraints.txt -e . -r bench/requirements-pipelinedp.txt
	@touch $@

bench-pipelinedp: java-check $(BENCH_STAMP)
	PYSPARK_PYTHON=$(abspath $(BENCH_PY)) PYSPARK_DRIVER_PYTHON=$(abspath $(BENCH_PY)) \
		$(BENCH_PY) bench/bench_pipelinedp.py $(BENCH_ARGS)
