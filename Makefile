# Two entry points: `make quickstart` (the main job on its default config) and `make test`.
# Both create .venv inside the tree when it is missing and install the package into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/quickstart

.PHONY: install quickstart test clean

$(STAMP): setup.py requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test,parity]'
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(PY) -m experiments.quickstart --workdir=$(WORKDIR)

# One pytest process per test file: see tests/run_by_file.sh.
test: $(STAMP)
	PY=$(PY) bash tests/run_by_file.sh

clean:
	rm -rf $(VENV) runs
