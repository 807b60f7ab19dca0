# The two commands of the README, and their parts.
PY ?= python3
# Material and a plugin print a banner about MkDocs 2.0 on every build; it is not about this site.
export NO_MKDOCS_2_WARNING := 1
export DISABLE_MKDOCS_2_WARNING := true

.PHONY: install quickstart test test-fast lint docs docs-check

install:
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all,test]"

quickstart: install
	edgenas quickstart

lint:
	$(PY) -m ruff check search_spaces latency_predictors nas experiments tests docs/scripts

# The documentation site, into site/ (open site/index.html; `mkdocs serve` while editing).
docs:
	$(PY) -m mkdocs build --strict

# The same build into a temporary directory: a broken link, a missing API page or a results
# file a benchmark table needs fails it.
docs-check:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(PY) -m mkdocs build --strict --quiet --site-dir "$$tmp"

test: install
	bash scripts/test_services.sh
	$(MAKE) lint
	$(MAKE) docs-check
	$(PY) -m pytest -q

# The edit-run loop: lint and every test not marked slow (servers, subprocesses, Chromium,
# TVM builds, the quickstart, > ~5 s): about 2.5 minutes on an idle 2-core machine.
test-fast:
	$(MAKE) lint
	$(PY) -m pytest -q -m "not slow"
