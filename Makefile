# The README's two commands: `make demo` and `make test`. Each does its own set-up (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
WAREHOUSE ?= warehouse

.PHONY: setup demo test bench clean-warehouse

setup:
	@bash scripts/setup.sh

demo: setup
	@$(PY) -m m2ugen_data.demo --warehouse $(WAREHOUSE)

test: setup
	@$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-warehouse:
	rm -rf $(WAREHOUSE)/manifests $(WAREHOUSE)/media $(WAREHOUSE)/shards $(WAREHOUSE)/catalog.duckdb $(WAREHOUSE)/synth
