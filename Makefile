# MP Dashboard. `make demo` and `make test` need only Python 3.11+ and make: each creates .venv
# and installs the locked dependencies itself.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check --quiet

# Test files run in parallel, each file whole in one worker (module fixtures, figures). Three
# workers on two cores: most tests wait on the sandbox's pacing, subprocesses and sockets.
PYTEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: venv demo test test-fast bench reliability screenshots lock install-systemd clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## The live dashboard on the built-in sandbox, no tokens needed: http://127.0.0.1:8001/mp
demo: venv
	$(BIN)/mp-collector demo

## The test suite (installs headless Chromium from Debian's packages when missing). Tests marked
## slow (the rest of the signal matrix, whose quick set covers every command, signal and moment
## once) run with `make reliability`.
test: venv
	bash scripts/install-test-deps.sh
	$(PYTEST) -m "not slow"

test-fast: venv
	$(PYTEST) -m "not browser and not slow"

## Performance figures (docs/PERFORMANCE.md)
bench: venv
	$(BIN)/python -m benchmarks

## Long fault, crash and load runs (docs/RELIABILITY.md), and the tests marked slow
reliability: venv
	RELIABILITY_FULL=1 $(BIN)/python -m pytest -q tests/reliability
	$(PYTEST) -m slow

## The README's screenshots
screenshots: venv
	bash scripts/install-test-deps.sh
	SCREENSHOTS_DIR=docs/img $(BIN)/python -m pytest -q -m browser -k screenshot

## Re-resolve dependencies from pyproject.toml into requirements.lock
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet -e '.[test]'
	{ echo "# Exact versions for a reproducible install: make creates .venv from this file."; \
	  echo "# Regenerate with 'make lock' after changing dependencies in pyproject.toml."; \
	  build/lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock

## systemd units for this checkout (run as root); see systemd/README.md
install-systemd: venv
	bash systemd/install.sh --app-dir "$(CURDIR)"

clean:
	rm -rf $(VENV) build .pytest_cache
