# The README's two commands: `make demo` and `make test`. Each does its own set-up (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
WAREHOUSE ?= warehouse

.PHONY: setup demo test test-fast bench clean-warehouse

setup:
	@bash scripts/setup.sh

demo: setup
	@$(PY) -m m2ugen_data.demo --warehouse $(WAREHOUSE)

# everything, what CI runs; the slowest tests are listed at the end so they stay visible
test: setup
	@$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

# the lane to run while editing: unit tests and small real-audio cases (no test marked slow)
test-fast: setup
	@$(PY) -m pytest -q -m "not slow" --durations=10 $(PYTEST_ARGS)

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-warehouse:
	rm -rf $(WAREHOUSE)/manifests $(WAREHOUSE)/media $(WAREHOUSE)/shards $(WAREHOUSE)/catalog.duckdb $(WAREHOUSE)/synth
