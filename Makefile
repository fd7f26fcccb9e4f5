# The two commands of the README:
#   make sim    installs the project into .venv and runs `autocm sim` on a bundled scenario
#   make test   installs the project (and the e2e tools, cached under ~/.cache/autocm) and runs every test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= inference-azure-code
OUT ?= reports/$(SCENARIO)

.PHONY: install sim test lint e2e-tools

$(BIN)/autocm: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/autocm

install: $(BIN)/autocm

sim: install
	$(BIN)/autocm sim $(SCENARIO) --out $(OUT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

e2e-tools:
	bash scripts/e2e-tools.sh

test: install e2e-tools lint
	$(BIN)/pytest
