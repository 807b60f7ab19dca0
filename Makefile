# The two commands of the README, and their parts.
PY ?= python3

.PHONY: install quickstart test lint

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
