# Two entry points, each doing its own set-up in .venv (only Python >= 3.11 is needed):
#   make demo   the main job: `pickllm bench` on the bundled RouterBench data
#   make test   the whole suite: ruff check, ruff format --check, mypy --strict, pytest
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lock bench-overhead clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The dev tools and frameworks come pinned, with hashes, from requirements/dev.lock (made by
# `make lock`); the package itself declares loose ranges for its users.
$(VENV)/.installed-dev: requirements/dev.lock pyproject.toml | $(BIN)/python
	@echo "Installing the pinned dependencies into $(VENV) (a minute or two on a fresh machine)..."
	$(BIN)/python -m pip install --progress-bar on --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

demo: $(VENV)/.installed-dev
	$(BIN)/pickllm bench --plot bench-out/routerbench.png --json bench-out/routerbench.json

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench-overhead: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/langchain_overhead.py

# Regenerate the lock on purpose (newest releases within pyproject's ranges, Python >= 3.11).
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-header -o requirements/dev.lock

clean:
	rm -rf $(VENV) build bench-out *.egg-info
