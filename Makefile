# Two commands do all the set-up on a fresh CPU machine:
#   make demo   venv + install + synthetic shards (if absent) + the main CPU job
#   make test   venv + install (if needed) + the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install shards clean-outputs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# CPU build of torch, pinned (an unpinned torch pulls a multi-GB CUDA build)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

shards: $(STAMP)
	$(VENV)/bin/ltx-shards synth --out data/shards/synthetic --train 256 --val 32 --workers 2

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -m "not gpu"

clean-outputs:
	rm -rf outputs
