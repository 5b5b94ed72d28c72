# Two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv and installs what it needs; torch is pinned first so that pip takes the CPU build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
# The shared corpora, when they sit beside the checkout (as in CI); otherwise the loader finds or fetches them.
SHARED_CORPORA := $(abspath ../shared/corpora)
export TALLER_DATA ?= $(if $(wildcard $(SHARED_CORPORA)/refranes.txt),$(SHARED_CORPORA),)

.PHONY: demo test install browser clean activate

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

test: install browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
