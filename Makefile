# The two commands of the README, and their parts.
PY ?= python3

.PHONY: install quickstart test test-fast lint

install:
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,test]"

quickstart: install
	edgenas quickstart

lint:
	$(PY) -m ruff check search_spaces latency_predictors nas experiments tests

test: install
	bash scripts/test_services.sh
	$(MAKE) lint
	$(PY) -m pytest -q

# The edit-run loop: lint and every test not marked slow (servers, subprocesses, Chromium,
# TVM builds, the quickstart, > ~5 s), in under 2 minutes on a 2-core machine.
test-fast:
	$(MAKE) lint
	$(PY) -m pytest -q -m "not slow"
