# The two README commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo claims test test-fast lint docs clean

setup: $(STAMP)

# torch first, pinned to the CPU wheel (stack.md T1); then the project with its dev extras.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" || $(PY) -m pip install -q "torch>=2.4,<2.14"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m nas.cli demo

# every claim space of spaces/claims/ as an ablation campaign with its verdicts (resumable)
claims: $(STAMP)
	$(PY) -m nas.cli claims --runner runners/claims-local.yaml

# JOBS parallel workers (pytest-xdist), one test module per worker at a time (its Ray session
# and module fixtures stay in one worker: --dist loadfile); --durations=15: the 15 slowest
# tests, to keep the suite under its 20-minute budget on 2 cores
JOBS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile -m 'not heavy'

# the docs/ site into site/ (offline; the CLI and YAML references are generated from the code)
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

lint: $(STAMP)
	$(VENV)/bin/ruff check nas tests && $(VENV)/bin/ruff format --check nas tests

clean:
	rm -rf $(VENV) .pytest_cache site
