# Two commands for a new user: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PY_BOOTSTRAP ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.venv-uv/bin/uv)
# DAGSTER_HOME is the project root: its dagster.yaml is then DAGSTER_HOME's own (`dg dev` warns about
# a dagster.yaml in the folder it starts in that is not), and that file keeps Dagster's storage
# under .dagster_home/.
export DAGSTER_HOME := $(CURDIR)
DAGSTER_STORAGE := $(CURDIR)/.dagster_home
# Two environments from one uv.lock (pyproject.toml: the extras `file` and `lake`). The DuckDB file
# runs on the newest DuckDB in .venv; the DuckLake needs extensions built for DuckDB 1.5.5 only, so
# with PENGUIN_WAREHOUSE=ducklake:... every target runs in .venv-lake instead (`make setup-lake`).
FILE_ENV := $(CURDIR)/.venv
LAKE_ENV := $(CURDIR)/.venv-lake
ifneq ($(filter ducklake:%,$(PENGUIN_WAREHOUSE)),)
export UV_PROJECT_ENVIRONMENT := $(LAKE_ENV)
else
export UV_PROJECT_ENVIRONMENT := $(FILE_ENV)
endif
DUCKDB_EXTRA = $(if $(filter $(LAKE_ENV),$(1)),lake,file)
# Compile .pyc at install time: with PYTHONDONTWRITEBYTECODE set (as on these machines) every
# process would otherwise recompile dagster, sklearn and vetiver from source (~10 s per start).
export UV_COMPILE_BYTECODE := 1
RUN := $(UV) run --locked --no-sync
RUN_LAKE := UV_PROJECT_ENVIRONMENT=$(LAKE_ENV) $(RUN)
PORT ?= 8080
# The stamp of the last `uv sync`: syncing again only when pyproject.toml or uv.lock is newer
# spares every target the ~2 s it takes uv to re-check the installed files.
SYNCED := $(UV_PROJECT_ENVIRONMENT)/.synced

.PHONY: docs setup setup-lake run dev test test-fast lint browser bench bench-freshness bench-ui bench-executor new-data chart clean-data lock serve bench-api wrk prod-up prod-down prod-status bench-prod bench-lake-writers bench-raw-layouts bench-compare app bench-explorer

$(UV):
	@echo "setup: no uv found, installing it with pip into .venv-uv"
	@$(PY_BOOTSTRAP) -m venv $(CURDIR)/.venv-uv
	@$(CURDIR)/.venv-uv/bin/pip install -qq --disable-pip-version-check uv

# Installs exactly what uv.lock says (dev tools included) with the environment's DuckDB; uv's output
# goes to the environment's sync.log (kept in a temp file until uv has made the environment: uv
# refuses a folder that is not one yet).
$(FILE_ENV)/.synced $(LAKE_ENV)/.synced: pyproject.toml uv.lock | $(UV)
	@echo "setup: installing uv.lock into $(notdir $(@D)) (log: $(@D)/sync.log)"
	@log=$$(mktemp); UV_PROJECT_ENVIRONMENT=$(@D) $(UV) sync --locked --extra $(call DUCKDB_EXTRA,$(@D)) >$$log 2>&1; status=$$?; \
	if [ -d $(@D) ]; then mv -f $$log $(@D)/sync.log; log=$(@D)/sync.log; fi; \
	if [ $$status != 0 ]; then tail -n 20 $$log >&2; echo "setup: uv sync failed (whole log: $$log)" >&2; exit 1; fi
	@touch $@

# The environment from uv.lock (DAGSTER_HOME needs nothing: dagster.yaml is in the project root).
setup: $(SYNCED)  ## the environment from uv.lock (uv bootstrapped if absent); every target runs it first

setup-lake: $(LAKE_ENV)/.synced  ## the DuckLake's environment .venv-lake (DuckDB 1.5.5 and its extensions); `make test` and the lake benchmarks make it

run: setup  ## set up, then materialize the whole graph once on the embedded defaults
	@$(RUN) penguin-pipeline run

DAGSTER_PORT ?= 3000
# `dg dev` (not `dagster dev`, which prints a "superseded, use dg dev" warning at every start) loads
# the project from pyproject's [tool.dg]; the same definitions as workspace.yaml.
dev: setup  ## Dagster UI + daemon at http://127.0.0.1:$(DAGSTER_PORT) (DAGSTER_PORT=3000 by default)
	@# The instance's SQLite storage exists before the UI and the daemon start together.
	@test -d $(DAGSTER_STORAGE)/history || $(RUN) python -c "import dagster; dagster.DagsterInstance.get().dispose()"
	$(RUN) penguin-pipeline seed
	@echo "make dev: Dagster UI at http://127.0.0.1:$(DAGSTER_PORT) (Ctrl-C stops the UI, the daemon and their runs)"
	@# penguin_pipeline/dev.py runs `dg dev` and, on Ctrl-C, ends the code servers it leaves behind.
	$(RUN) python -m penguin_pipeline.dev -h 127.0.0.1 -p $(DAGSTER_PORT)

# Whole files spread over up to 4 CPUs (pytest-xdist): most of the suite's time is real processes
# (daemons, workers, browsers) starting and waiting, which overlaps well. Plain `pytest` runs it
# in one process (in .venv the lake's tests are skipped, naming .venv-lake).
PYTEST_PARALLEL := -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder --durations 15
test: setup setup-lake browser  ## set up (Chromium included), then the whole test suite (files in parallel over the CPUs, at most 4)
	@# --no-loadscope-reorder: keep conftest's order (the longest files first); pytest-xdist would
	@# hand out files by their number of tests, leaving the few long profile tests for the end.
	@# Then the DuckLake's tests (marker lake) in its own environment, whatever the first part did.
	@status=0; \
	$(RUN) pytest -m "not lake" $(PYTEST_PARALLEL) || status=1; \
	$(RUN_LAKE) pytest -m lake $(PYTEST_PARALLEL) || status=1; \
	exit $$status

test-fast: setup  ## the suite without tests that start real processes
	$(RUN) pytest -m "not integration and not lake"

lint: $(SYNCED)  ## ruff check, ruff format --check, deptry (imports vs declared dependencies); all three run
	@status=0; \
	$(RUN) ruff check . || status=1; \
	$(RUN) ruff format --check . || status=1; \
	$(RUN) deptry . || status=1; \
	exit $$status

bench: setup  ## `make run` as a user runs it (fresh data, through make) beside the book's plain lab script
	$(RUN) python bench/bench_pipeline.py

serve: setup  ## prediction API at http://127.0.0.1:$(PORT) (docs at /docs), newest penguin_model on the board
	$(RUN) python -m penguin_pipeline.api --port $(PORT)

APP_PORT ?= 8000
app: setup  ## the model explorer (Shiny) at http://127.0.0.1:$(APP_PORT), asking the API at PENGUIN_API_URL (make serve first)
	APP_PORT=$(APP_PORT) $(RUN) python -m penguin_pipeline.explorer --port $(APP_PORT)

bench-explorer: setup browser  ## an input change in the explorer to its new prediction on screen, in Chromium (median, p90)
	$(RUN) python bench/bench_explorer.py

bench-api: setup wrk  ## our prediction API beside stock vetiver.VetiverAPI under wrk (or a Python fallback), ratios
	$(RUN) python bench/bench_api.py

# wrk, the load generator of bench-api: Debian's package, installed when this runs as root and it is
# absent; otherwise it says so and bench-api falls back to bench/api_loadgen.py (slower, pure Python).
wrk:  ## wrk for bench-api (apt-get install wrk, as root, when absent)
	@if command -v wrk >/dev/null 2>&1; then \
		echo "wrk: $$(command -v wrk)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "wrk: installing Debian's wrk"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null \
			&& echo "wrk: $$(command -v wrk)"; } \
			|| echo "wrk: installing wrk failed; bench-api uses bench/api_loadgen.py instead" >&2; \
	else \
		echo "wrk: not found and cannot install it (not root, or no apt-get); bench-api uses bench/api_loadgen.py" >&2; \
	fi

bench-freshness: setup  ## a landed file to its model version listed on the board, watched from another process while make dev runs (median)
	$(RUN) python bench/bench_freshness.py

bench-ui: setup browser  ## "Materialize all" in the Dagster UI -> every asset refreshed, per way of launching (Chromium)
	$(RUN) python bench/bench_ui_materialize.py

bench-executor: setup  ## the job under the in-process and the multiprocess executor
	$(RUN) python bench/bench_executor.py

new-data: setup  ## land a synthetic next field season for the sensor to pick up
	$(RUN) penguin-pipeline new-data

N ?= 1000000
FORMAT ?= parquet
synth: setup  ## write N (default 10^6) synthetic penguin rows as season x island landing files (FORMAT=parquet|csv)
	$(RUN) penguin-pipeline synth --rows $(N) --format $(FORMAT)

bench-scale: setup setup-lake  ## the pipeline vs plain pandas and polars scripts at N = 10^4 .. 10^8: wall time, peak memory, ratios
	@$(UV) sync --locked --extra $(call DUCKDB_EXTRA,$(UV_PROJECT_ENVIRONMENT)) --group bench -q  # polars, for its peer script only
	$(RUN) python bench/bench_scale.py

bench-lake-writers: setup setup-lake  ## four landing files as four runs at once, on the DuckDB file and on the DuckLake (Postgres catalog)
	$(RUN) python bench/bench_lake_writers.py

BASE ?=
bench-compare: setup setup-lake  ## an earlier commit's `make run` beside today's on the same landing files (BASE=<commit>, N via BENCH_COMPARE_N, default 10^7)
	BENCH_BASE=$(BASE) $(RUN) python bench/bench_compare.py

bench-raw-layouts: setup-lake  ## what writing the raw layer costs per row in other layouts (typed, unchecked, registered without a copy), lake and file
	@# in the lake's environment: it opens the file and the lake in one process (DuckDB 1.5.5 for both)
	$(RUN_LAKE) python bench/bench_raw_layouts.py

# The generated pages first (docs/gen.py: variables, targets, CLI, API routes, benchmark tables and
# plots), then the site in strict mode: a broken link or anchor fails the build.
docs: setup  ## the documentation site into site/ (open site/index.html); fails on a broken link or missing page
	$(RUN) python docs/gen.py
	$(RUN) zensical build --strict --clean

chart: setup  ## regenerate README's data-flow chart from the definitions
	$(RUN) python -m penguin_pipeline.dataflow README.md

# Chromium for the browser tests (penguin_pipeline_tests/browser): Debian's package, because
# Playwright's own browser download is not reachable from every machine. Installed when this runs
# as root and no Chromium is found; otherwise it says what to do (the tests then fail, loudly).
CHROMIUM_PACKAGE ?= chromium
browser:  ## Chromium for the browser tests (apt-get install chromium, as root, when absent)
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$$PENGUIN_CHROMIUM" ]; then \
		echo "browser: $$(command -v chromium || command -v chromium-browser || echo $$PENGUIN_CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser: installing Debian's $(CHROMIUM_PACKAGE)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CHROMIUM_PACKAGE) >/dev/null \
			&& echo "browser: $$(command -v chromium)"; } \
			|| echo "browser: installing $(CHROMIUM_PACKAGE) failed; the browser tests will fail and say so" >&2; \
	else \
		echo "browser: no Chromium and not root: run \`sudo apt-get install -y chromium\` (or set PENGUIN_CHROMIUM=/path/to/chrome), then make test again" >&2; \
	fi

# The production profile (README, "Production profile"): the instance on PostgreSQL, steps on Celery
# workers (RabbitMQ, Redis), its own DAGSTER_HOME (.dagster_home_prod); penguin_pipeline/prod.py
# checks the services first, then runs every process under supervisord (instance/prod/supervisord.conf
# rendered into .dagster_home_prod/services/, with each process's log).
# HOSTS=2: the workers on a simulated second host (namespaces and a veth link; needs root).
HOSTS ?= 1
prod-up: setup  ## production profile: webserver (DAGSTER_PORT), daemon, PENGUIN_WORKERS Celery workers (HOSTS=2: on a second host), under supervisord
	@DAGSTER_PORT=$(DAGSTER_PORT) PENGUIN_HOSTS=$(HOSTS) $(RUN) python -m penguin_pipeline.prod up

prod-down: setup  ## supervisord's shutdown and the second host's namespaces and link: all prod-up made, also after a crash half-way
	@$(RUN) python -m penguin_pipeline.prod down

prod-status: setup  ## what of the production profile runs, and whether each service answers
	@DAGSTER_PORT=$(DAGSTER_PORT) $(RUN) python -m penguin_pipeline.prod status

bench-prod: setup-lake  ## one backfill: embedded default, the profile (2 workers), it with lake + S3, and (root) two hosts, side by side
	@# in the lake's environment: one of its profiles runs on the lake (every one on DuckDB 1.5.5 alike)
	$(RUN_LAKE) python bench/bench_prod.py

lock: $(UV)  ## re-resolve uv.lock after a change to pyproject.toml
	$(UV) lock

clean-data:  ## forget all runtime data (warehouse, board, reports, run logs, Dagster history); keeps landing files
	rm -rf data/penguins.duckdb* data/board data/reports data/duckdb_tmp data/quarantine data/logs $(DAGSTER_STORAGE)/storage $(DAGSTER_STORAGE)/history $(DAGSTER_STORAGE)/schedules $(DAGSTER_STORAGE)/logs
