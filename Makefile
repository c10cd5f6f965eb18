# cascam-book: every target creates .venv when missing and installs the pinned versions into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cascam-installed
PROFILE ?= default

.PHONY: install test lint book demo clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check cascam tests benchmarks data_scripts notebooks

book: $(STAMP)
	$(BIN)/cascam book --profile $(PROFILE)

demo: $(STAMP)
	$(BIN)/cascam run configs/default.yaml

clean:
	rm -rf book/_build
