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

.PHONY: install demo pipeline test lint format strip-notebooks clean

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

demo: pipeline
	@echo "Pipeline done: runs/$(PROFILE). The arena app arrives with its issue; open notebooks/ with:"
	@echo "  $(VENV)/bin/jupyter lab notebooks/"

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
	rm -rf runs data/cache .pytest_cache .ruff_cache
