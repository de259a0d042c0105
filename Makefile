# Two commands for a newcomer: `make run` builds the warehouse from the committed sample, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test dev lint sample clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/profiles build

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

dev: $(STAMP)
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/.dagster_home} sh -c 'mkdir -p "$$DAGSTER_HOME" && $(BIN)/dagster dev -w workspace.yaml'

sample: $(STAMP)
	$(BIN)/profiles sample --persons 2000 --seed 42 --out data/sample

clean:
	rm -rf data/warehouse data/serving data/exports data/models
