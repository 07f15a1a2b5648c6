# Every target builds .venv from pyproject.toml first, so a fresh clone needs only python3 and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= conf/zaiko.example.toml

.PHONY: test lint run demo bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy protocols daemon

test: lint
	$(BIN)/pytest -q

run: $(STAMP)
	$(BIN)/zaiko --config $(CONFIG) daemon

# HEADLESS=1: no TUI, a status line every 10 s instead (CI, a piped run)
demo: $(STAMP)
	DEMO_HEADLESS=$(HEADLESS) $(BIN)/python demo/demo.py

bench: $(STAMP)
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/import.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
