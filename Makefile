# cascam-book: every target creates .venv when missing and installs the pinned versions into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cascam-installed
PROFILE ?= default

.PHONY: install test lint book demo clean browser

# --no-compile, then cascam.bytecode: compile only the modules this project imports (about 40 s) instead
# of every module of every package (torch alone has thousands; 108 s more). Writing them matters where
# PYTHONDONTWRITEBYTECODE is set: without bytecode every kernel and CLI call compiles them again (8 s each).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt -e ".[all]"
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt --no-deps quantus  # its other needs are installed above
	$(BIN)/python -m cascam.bytecode
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The site test renders the landing page in headless Chromium. Installed from Debian's packages when
# this is a Debian machine and we are root (as in CI); otherwise say how, and that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	    apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: Chromium is not installed (apt-get install chromium); the page-rendering test will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check cascam tests benchmarks data_scripts notebooks

book: $(STAMP)
	$(BIN)/cascam book --profile $(PROFILE)

demo: $(STAMP)
	$(BIN)/cascam run configs/default.yaml

clean:
	rm -rf book/_build
