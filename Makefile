# Fresh clone: `make test` (set-up + tests) and `make demo` (set-up + the demo pipeline).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.installed

.PHONY: setup test lint doctor demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo 'no tests collected'; exit 0; fi; exit $$rc

lint: setup
	$(BIN)/ruff check healnet_cli tests benchmarks scripts
	$(BIN)/ruff format --check healnet_cli tests benchmarks scripts
	$(BIN)/mypy

doctor: setup
	$(BIN)/healnet doctor

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/healnet demo

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
