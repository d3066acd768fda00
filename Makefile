# One entry point for chores. Every target creates the virtual environment it needs: `demo` installs
# conveyor and what it needs to run; `test`, `lint` and `bench` add the development tools.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CREATED := $(VENV)/pyvenv.cfg
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(CREATED):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "conveyor needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml $(CREATED)
	$(BIN)/python -m pip install --quiet -e .
	@touch $(RUNTIME)

$(DEV): pyproject.toml $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(DEV)

demo: $(RUNTIME)
	$(BIN)/conveyor demo $(DEMO_ARGS)

test: $(DEV)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(DEV)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(DEV)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
