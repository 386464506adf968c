# The two entry points are `make demo` and `make test`; both set up everything they need. `make up` and
# `make down` start and remove the ColonyOS tutorial's dev environment on the local cluster.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test demo up down deps venv lock colonies unit lint clean

test: deps venv colonies
	$(VENV)/bin/lint-imports --no-cache
	PATH="$$(hack/build-k8s.sh):$$PATH" $(PYTHON) -m pytest $(PYTEST_ARGS)

unit: venv
	$(VENV)/bin/lint-imports --no-cache
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

demo: deps venv colonies
	PATH="$$(hack/build-k8s.sh):$$PATH" $(PYTHON) hack/demo.py

up: deps venv colonies
	PATH="$$(hack/build-k8s.sh):$$PATH" $(PYTHON) hack/dev-env.py up

down: venv
	PATH="$$(hack/build-k8s.sh):$$PATH" $(PYTHON) hack/dev-env.py down

deps:
	@hack/install-deps.sh

venv: $(VENV)/.installed

# The locked dependencies (requirements/test.txt), then the project, editable; with uv, or pip without it.
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml requirements/test.txt hack/venv.sh
	@hack/venv.sh $(VENV)
	@touch $@

# Regenerates requirements/*.txt from pyproject.toml (LOCK_ARGS=--upgrade moves every version).
lock:
	hack/lock.sh $(LOCK_ARGS)

colonies:
	@hack/build-colonies.sh >/dev/null

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info operator/*.egg-info
