# Two entry points: `make quickstart` (the main job on its default config) and `make test`.
# Both create .venv inside the tree when it is missing and install the package into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/quickstart
# Tests that load torch run in their own process: torch and XLA in one process crashed XLA
# compilation (seen twice under load).
TORCH_TESTS := tests/test_hf_import.py tests/test_hf_tokenizer.py tests/test_benchmarks.py

.PHONY: install quickstart test clean

$(STAMP): setup.py requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test,parity]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(PY) -m experiments.quickstart --workdir=$(WORKDIR)

test: $(STAMP)
	COLLAB_BLOCK_TORCH=1 $(PY) -m pytest -q tests $(addprefix --ignore=,$(TORCH_TESTS))
	$(PY) -m pytest -q $(TORCH_TESTS)

clean:
	rm -rf $(VENV) runs
