# Two commands on a fresh machine (see README):  make demo   |   make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: install demo test bench bench-all safety-gymnasium clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	# Every extra, so CI runs every engine's tests; constraints.txt pins the set that works together.
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,all,robosuite]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/safeshield demo

test: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/python -m pytest -n 2 tests

# Optional: Safety-Gymnasium 1.0.0 pins gymnasium 0.28, so it goes in without its pins (the integration's shim
# runs it on gymnasium 1.x; docs/integrations.md). Its tests and benchmark cases run once it is there.
safety-gymnasium: $(STAMP)
	$(BIN)/pip install --quiet --no-deps "safety-gymnasium==1.0.0" "xmltodict==1.0.4" "pyyaml==6.0.4"

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

# Every benchmark at its full (CPU-scale) setting: a few hours on 2 cores. Each also has --quick.
bench-all: bench $(STAMP)
	$(BIN)/python benchmarks/vector_and_agents.py
	$(BIN)/python benchmarks/envs_speed.py
	$(BIN)/python benchmarks/minitaur_sqrl.py
	$(BIN)/python benchmarks/csc_nav.py
	$(BIN)/python benchmarks/transfer_hallway.py
	$(BIN)/python benchmarks/safer_operation.py
	$(BIN)/python benchmarks/ray_scaling.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
