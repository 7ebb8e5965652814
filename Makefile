# RLHF Lab. `make demo` and `make test` are all a fresh machine needs.
# GPU users: make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"

PYTHON     ?= python3
VENV       ?= .venv
PROFILE    ?= tiny
TORCH_SPEC ?= torch==2.13.0
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED = False

ARENA_ARGS ?=

.PHONY: install demo pipeline arena test lint format strip-notebooks clean

install: $(STAMP)

# torch first and pinned: an unpinned torch (directly or via a dependency) pulls GBs of CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

pipeline: install
	$(PY) -m lab pipeline --profile $(PROFILE)

# The pipeline, then the arena on its models (http://127.0.0.1:7860; Ctrl-C stops it).
demo: pipeline arena

arena: install
	@echo "Notebooks: $(VENV)/bin/jupyter lab notebooks/"
	$(PY) -m apps.arena --run runs/$(PROFILE) $(ARENA_ARGS)

test: install lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

strip-notebooks: install
	$(PY) -m nbconvert --clear-output --inplace notebooks/*.ipynb

clean:
	rm -rf runs data/cache data/arena.sqlite* data/exports .pytest_cache .ruff_cache
