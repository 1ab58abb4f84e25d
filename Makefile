# Two entry points, each doing its own set-up in .venv (only Python >= 3.11 is needed):
#   make demo   the main job: `pickllm bench` on the bundled RouterBench data
#   make test   the whole suite: ruff check, ruff format --check, mypy --strict, then pytest in
#               two steps: the default run (`-m "not slow"`, from pyproject's addopts) and the
#               long convergence runs (`-m slow`); CI runs both. It installs redis-server first
#               if missing: the Redis integration tests start their own server.
#   make test-latest  the same checks against the newest releases (own venv, not CI)
#   make mutation  mutation testing of the engine, router, objective and policies (mutmut; not in CI)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-latest mutation lock bench-overhead clean

$(BIN)/python:
	@echo "Creating $(VENV) with $(PYTHON)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar on --upgrade pip

# The dev tools and frameworks come pinned, with hashes, from requirements/dev.lock (made by
# `make lock`); the package itself declares loose ranges for its users.
$(VENV)/.installed-dev: requirements/dev.lock pyproject.toml | $(BIN)/python
	@echo "Installing the pinned dependencies into $(VENV) (a few minutes on a fresh machine)..."
	$(BIN)/python -m pip install --progress-bar on --require-hashes -r requirements/dev.lock
	@echo "Installing pickllm itself (editable)..."
	$(BIN)/python -m pip install --progress-bar on --no-deps -e .
	touch $@

# The bench draws a progress bar on stderr when it is a terminal.
demo: $(VENV)/.installed-dev
	mkdir -p bench-out
	$(BIN)/pickllm bench --plot bench-out/routerbench.png --json bench-out/routerbench.json

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	scripts/ensure-redis-server.sh
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q -m slow

# The same checks against the newest releases within pyproject's ranges, in a venv of their
# own (not CI's: the lock keeps `make test` reproducible). A failure here is what the next
# `make lock` would bring in.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade -e ".[dev]"
	$(LATEST)/bin/python -m pip list --format=freeze | grep -iE "^(langchain|llama-index-core|pydantic|numpy|mypy|ruff)"
	$(LATEST)/bin/ruff check .
	$(LATEST)/bin/mypy
	scripts/ensure-redis-server.sh
	$(LATEST)/bin/python -m pytest -q
	$(LATEST)/bin/python -m pytest -q -m slow

bench-overhead: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/langchain_overhead.py

# Mutation testing with mutmut, configured in pyproject.toml ([tool.mutmut]): which modules
# are mutated and which tests run against them. mutmut 3 needs the package under src/, so it
# runs in $(MUTATION_DIR), where src/ links to core/; each run starts afresh (a few minutes).
# Survivors: `cd $(MUTATION_DIR) && mutmut show <name>` (or `mutmut browse`).
MUTATION_DIR := build/mutation
MUTATION_JOBS ?= 2

mutation: $(VENV)/.installed-dev
	rm -rf $(MUTATION_DIR)
	mkdir -p $(MUTATION_DIR)
	ln -s ../../core $(MUTATION_DIR)/src
	ln -s ../../tests $(MUTATION_DIR)/tests
	cp pyproject.toml $(MUTATION_DIR)/
	cd $(MUTATION_DIR) && env -u PYTHONPATH $(abspath $(BIN))/mutmut run --max-children $(MUTATION_JOBS)
	@echo "Mutation score per module (killed, timeouts included / mutants):"
	@cd $(MUTATION_DIR) && $(abspath $(BIN))/mutmut results --all true | awk \
		'{ n = $$1; sub(/:$$/, "", n); sub(/\.x(_|ǁ).*/, "", n); if ($$2 == "not") next; \
		   t[n]++; if ($$2 == "killed" || $$2 == "timeout") k[n]++ } \
		 END { for (n in t) printf "  %-36s %5d / %-5d %5.1f%%\n", n, k[n], t[n], 100 * k[n] / t[n] }' \
		| sort

# Regenerate the lock on purpose (newest releases within pyproject's ranges, Python >= 3.11).
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-header -o requirements/dev.lock

clean:
	rm -rf $(VENV) build bench-out *.egg-info
