# Two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv and installs what it needs; torch is pinned first so that pip takes the CPU build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
# The shared corpora, when they sit beside the checkout (as in CI); otherwise the loader finds or fetches them.
SHARED_CORPORA := $(abspath ../shared/corpora)
export TALLER_DATA ?= $(if $(wildcard $(SHARED_CORPORA)/refranes.txt),$(SHARED_CORPORA),)

.PHONY: demo test install browser lint format clean activate

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/taller demo
	@echo "En una terminal nueva: source $(VENV)/bin/activate (después, taller …), o $(BIN)/taller … sin activar nada."

# `taller` on the PATH of this shell needs the shell itself: print the line to run (make cannot change its parent).
activate: install
	@echo "source $(VENV)/bin/activate"

# The browser test drives Debian's chromium; install it when missing and we are root (else the test is skipped).
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
	  { DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
	  echo "make: no pude instalar chromium; la prueba del navegador se saltará."

# The tests run in a random order (pytest-randomly), a new one each time; the seed is printed so that an order that
# fails can be run again: `make test SEED=1234`. They run in one process per core (pytest-xdist, `-n auto`), each
# computing with its share of the cores (tests/conftest.py); which process takes which test depends on the clock, so
# an order is repeated exactly in one process: `make test SEED=1234 WORKERS=0`.
WORKERS ?= auto
ifndef SEED  # drawn once (:=), so that the seed shown is the seed used
SEED := $(shell $(PYTHON) -c 'import random; print(random.randrange(10**6))')
endif
test: install browser lint
	@echo "make test: orden aleatorio con la semilla $(SEED) (repítelo en un solo proceso con: make test SEED=$(SEED) WORKERS=0)"
	$(BIN)/python -m pytest -n $(WORKERS) --durations=15 --randomly-seed=$(SEED)

# The house's rules, checked by the ecosystem's tools: imports point down the layers of pyproject.toml
# (import-linter), ruff's rule set of pyproject.toml, and ruff's format (`make format` applies it; DEVELOPERS.md).
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache
