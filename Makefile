# Every target does its own set-up: a fresh machine needs only Python 3.11+ and make.
# run, migrate and demo install what running needs; test, lint and bench add the
# development tools (pytest, hypothesis, ruff) on top.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

.PHONY: run demo test lint migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# what running needs: the package and its dependencies, no test tools
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

# everything: the same plus the dev extras
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(RUNTIME) $(STAMP)

run: $(RUNTIME)
	$(BIN)/python -m bot migrate
	$(BIN)/python -m bot serve

demo: $(RUNTIME)
	$(BIN)/python -m bot demo

migrate: $(RUNTIME)
	$(BIN)/python -m bot migrate

test: $(STAMP)
	$(BIN)/ruff check bot migrations tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bot migrations tests bench

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) *.egg-info
