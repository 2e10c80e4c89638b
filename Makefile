# plmkit set-up. `make test` and `make demo` are the two commands the README opens with.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned here (not in pyproject) so that pip takes the local CPU build
# instead of resolving a multi-GB CUDA wheel; pyproject keeps torch>=2.4.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install test demo demo-quick clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,full,fp8]'
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/plmkit demo

demo-quick: install
	$(BIN)/plmkit demo --quick

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
