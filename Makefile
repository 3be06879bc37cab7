# The data stager: one Makefile for the whole repository.
# `make up` runs the local stack, `make test` runs lint and every test.

PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PY_DIRS := shared services devtools tests bench scripts fuzz faults
# python-irodsclient's own suite against the test server, once presenting as each release;
# as root, each server and module runs as the unprivileged account irods-test (created
# when absent), as a real server runs as irods (docs/irods-test-server.md, Conformance)
CONFORMANCE := $(BIN)/python -m devtools.irods_server.conformance --presents 4.3.4 5.0.2

.PHONY: help venv lint test test-unit conformance bench up services clean lock fuzz faults

help:
	@echo "make up      run the whole system locally (foreground, Ctrl-C stops it)"
	@echo "make test    lint, then every test (starts the servers it needs)"
	@echo "make lint    ruff + mypy"
	@echo "make bench   benchmarks against the anchors, printed as ratios"
	@echo "make faults  the fault campaign (SEED=N, FORM=ci|short|full, FAULTS_DEADLINE=s; docs/testing.md)"
	@echo "make fuzz    schemathesis against the running API, then each atheris target (docs/testing.md)"

# pip's own output goes to $(VENV)/install.log; the terminal gets one line, or the log's
# tail and a non-zero exit when an install fails.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) (log: $(VENV)/install.log)"
	@( $(BIN)/pip install -q --upgrade pip && \
	   $(BIN)/pip install -q -r requirements.lock && \
	   $(BIN)/pip install -q --no-deps -e . ) > $(VENV)/install.log 2>&1 || \
	  { tail -n 25 $(VENV)/install.log >&2; echo "pip install failed; full log: $(VENV)/install.log" >&2; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy $(PY_DIRS)

services:
	@scripts/ensure-services.sh

test: lint services
	$(BIN)/pytest -q
	$(CONFORMANCE)

test-unit: $(STAMP)
	$(BIN)/pytest -q

conformance: $(STAMP)
	$(CONFORMANCE)

bench: $(STAMP) services
	$(BIN)/python -m bench

# schemathesis: FUZZ_CASES examples per operation and phase (>= 1,000 cases per principal);
# atheris: FUZZ_SECONDS per target. Both run; the exit status says whether either found something.
FUZZ_SECONDS ?= 60
FUZZ_CASES   ?= 100
fuzz: $(STAMP) services
	@status=0; \
	$(BIN)/python -m fuzz.api --cases $(FUZZ_CASES) || status=1; \
	$(BIN)/python -m fuzz.run --seconds $(FUZZ_SECONDS) || status=1; \
	exit $$status

FORM ?= full
# seconds: a run that takes longer stops and fails (docs/testing.md)
FAULTS_DEADLINE ?= 2400
faults: $(STAMP) services
	nice $(BIN)/python -m faults --form $(FORM) --deadline $(FAULTS_DEADLINE) $(if $(SEED),--seed $(SEED))

up: $(STAMP) services
	$(BIN)/python -m scripts.up

lock:
	@rm -rf .lockvenv && $(PY) -m venv .lockvenv
	.lockvenv/bin/pip install -q --upgrade pip
	.lockvenv/bin/pip install -q -e '.[dev]'
	.lockvenv/bin/pip freeze --exclude-editable | grep -v '^data-stager' > requirements.lock
	@rm -rf .lockvenv

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
