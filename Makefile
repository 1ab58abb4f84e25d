# Two entry points, each doing its own set-up in .venv (only Python >= 3.10 is needed):
#   make demo   the main job: `pickllm bench` on the bundled RouterBench data
#   make test   the whole suite: ruff check, ruff format --check, mypy --strict, pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test check lint typecheck pytest bench-overhead clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-all

demo: $(VENV)/.installed-all
	$(BIN)/pickllm bench --plot bench-out/routerbench.png --json bench-out/routerbench.json

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench-overhead: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/langchain_overhead.py

clean:
	rm -rf $(VENV) build bench-out *.egg-info
