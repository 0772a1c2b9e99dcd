# Two commands a new user needs: `make console` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: console test lint bench setup clean

setup: $(STAMP)

# Re-install when the dependency list changes; the stamp keeps repeat runs instant.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tradelab needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $(STAMP)

console: $(STAMP)
	$(BIN)/tradelab serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check tradelab tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/python benchmarks/bus.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
