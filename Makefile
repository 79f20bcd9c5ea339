# itas: every target installs what it needs first, and is quick the second time.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Benchmark data for tests and offline runs (never copied into the repository).
export ITAS_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install models demo test bench bench-table lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11+ not found (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# The vLLM serving environment and the default models, prepared once in ~/.cache/itas (ITAS_HOME).
models: install
	$(BIN)/itas models prepare

# A real search on the default pool: GSM8K, 6 trials (2 single-call baselines + 4 sampled), 8 questions,
# 128-token outputs. A second run finds the budget met in results/demo and prints the front at once.
demo: models
	$(BIN)/itas search --benchmark gsm8k --budget 6 --subset 8 --space demo --jobs 2 --out results/demo

# The whole suite, real vLLM tests included (one shared pool per run); prints the slowest tests.
# pytest exits 5 when it collected no test: that fails here like any other non-zero code.
test: models
	$(BIN)/python -m pytest -q --durations=25 $(PYTEST_ARGS)

bench: models
	$(BIN)/python bench/run.py

bench-table: models  # record (or resume recording) the outcome table that make bench replays
	$(BIN)/python bench/record_table.py

lint: install
	$(BIN)/ruff check itas tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
