# Two commands do all the set-up: `make demo` and `make test`. Each creates its venv when missing;
# `make test` also installs the Debian packages its tests need (make test-deps).
AIRFLOW_VERSION ?= 3.3.2
PYTHON ?= python3
VENV ?= $(if $(filter 3.3.2,$(AIRFLOW_VERSION)),.venv,.venv-$(AIRFLOW_VERSION))
LOCK := requirements/airflow-$(AIRFLOW_VERSION).txt
# Upper bounds a version's lock is resolved under, when that version needs any.
CONSTRAINTS := $(wildcard requirements/constraints-$(AIRFLOW_VERSION).txt)
BIN := $(VENV)/bin
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

.PHONY: venv demo test test-fast test-hostile test-cluster test-deps lint format lock clean bench-watch bench-hook bench-import bench-events bench-logs bench-metrics dist check-dist up docs

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

# PostgreSQL 15 and Redis (cluster suite), Chromium (browser test), Node.js and npm (Node SDK test) from
# Debian's packages, only what is missing; root installs them, anyone else is told to run
# `sudo make test-deps` (scripts/ensure-test-deps.sh). TEST_DEPS=cluster, browser or node limits it.
TEST_DEPS ?=
test-deps:
	scripts/ensure-test-deps.sh $(TEST_DEPS)

# test-deps first: a user who cannot install learns it before the venv is built.
# The tests that start no Airflow stack run on TEST_WORKERS processes, then the integration tests alone
# (scripts/run_tests.py); TEST_WORKERS=1 runs the first on one too.
test: test-deps venv
	PATH="$(CURDIR)/$(BIN):$$PATH" TEST_WORKERS=$(TEST_WORKERS) $(BIN)/python scripts/run_tests.py $(PYTEST_ARGS)

test-fast: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Only the hostile suite: user scenarios against realistic emulators whose clocks are 30 s off (HOSTILE_SEED=N
# replays a seed); `make test` runs it too.
test-hostile: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m hostile $(PYTEST_ARGS)

# Only the production-shaped stack (PostgreSQL, Redis, CeleryExecutor, 2 workers, 2 triggerers); `make test`
# runs it too.
test-cluster: TEST_DEPS = cluster
test-cluster: test-deps venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m cluster $(PYTEST_ARGS)

# Benchmarks print numbers (see docs/performance.md); BENCH_ARGS=--quick for a short watch run.
bench-watch: venv
	$(BIN)/python benchmarks/watch.py $(BENCH_ARGS)

bench-hook: venv
	$(BIN)/python benchmarks/hook.py $(BENCH_ARGS)

bench-import: venv
	$(BIN)/python benchmarks/import_time.py $(BENCH_ARGS)

bench-logs: venv
	$(BIN)/python benchmarks/run_logs.py $(BENCH_ARGS)

bench-events: venv
	$(BIN)/python benchmarks/event_watchers.py $(BENCH_ARGS)

bench-metrics: venv
	$(BIN)/python benchmarks/metrics.py $(BENCH_ARGS)

# Release files in dist/: sdist + wheel, `twine check --strict`, contents checked (scripts/check-dist.sh).
dist: venv
	BIN=$(BIN) AIRFLOW_VERSION=$(AIRFLOW_VERSION) scripts/check-dist.sh --build-only

# dist, then the built wheel in a clean venv: `airflow providers list` and an example DAG (CI runs this).
check-dist: venv
	BIN=$(BIN) AIRFLOW_VERSION=$(AIRFLOW_VERSION) scripts/check-dist.sh

# The emulator and a local Airflow UI with the example DAGs; Ctrl-C stops everything.
up: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/up.py

# The documentation site in docs/_build/html, warnings as errors.
docs: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Every extra of ours (openlineage) and the celery and postgres extras: the production-shaped stack of tests/integration (make test-cluster).
lock:
	echo "apache-airflow[celery,postgres]==$(AIRFLOW_VERSION)" > /tmp/airflow-pin-$(AIRFLOW_VERSION).txt
	uv pip compile -q pyproject.toml --all-extras requirements/dev.in /tmp/airflow-pin-$(AIRFLOW_VERSION).txt \
		$(addprefix -c ,$(CONSTRAINTS)) --python-version 3.11 --no-header --no-annotate -o $(LOCK)

clean:
	rm -rf .venv .venv-* .airflow .pytest_cache .mypy_cache .ruff_cache dist docs/_build
