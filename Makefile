# Two commands do all the set-up: `make demo` and `make test`. Each creates its venv when missing.
AIRFLOW_VERSION ?= 3.3.2
PYTHON ?= python3
VENV ?= $(if $(filter 3.3.2,$(AIRFLOW_VERSION)),.venv,.venv-$(AIRFLOW_VERSION))
LOCK := requirements/airflow-$(AIRFLOW_VERSION).txt
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: venv demo test test-fast lint format lock clean bench-watch bench-hook bench-import bench-logs

venv: $(VENV)/.installed

# The lock pins every package (Airflow's constraint files are not reachable from CI).
$(VENV)/.installed: $(LOCK) pyproject.toml
	@test -f $(LOCK) || { echo "No lock file $(LOCK): run 'make lock AIRFLOW_VERSION=$(AIRFLOW_VERSION)'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install -q --python $(BIN)/python -r $(LOCK) -e .
	touch $@

demo: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/demo.py

test: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Benchmarks print numbers (see README "Performance"); BENCH_ARGS=--quick for a short watch run.
bench-watch: venv
	$(BIN)/python benchmarks/watch.py $(BENCH_ARGS)

bench-hook: venv
	$(BIN)/python benchmarks/hook.py $(BENCH_ARGS)

bench-import: venv
	$(BIN)/python benchmarks/import_time.py $(BENCH_ARGS)

bench-logs: venv
	$(BIN)/python benchmarks/run_logs.py $(BENCH_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock:
	echo "apache-airflow==$(AIRFLOW_VERSION)" > /tmp/airflow-pin.txt
	uv pip compile -q pyproject.toml requirements/dev.in /tmp/airflow-pin.txt \
		--python-version 3.11 --no-header --no-annotate -o $(LOCK)

clean:
	rm -rf .venv .venv-* .airflow .pytest_cache .mypy_cache .ruff_cache
