# `make help` lists the targets. `make demo` and `make test` set up everything they need; with KUBECONFIG set,
# `make demo` and `make up` use that cluster instead of starting the project's own.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' operator/colonies_operator/__init__.py)

.PHONY: help demo up down test unit lint image chart deps venv lock colonies clean

help: ## this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  version $(VERSION); KUBECONFIG=<your cluster> make demo|up|down uses that cluster"

demo: deps venv colonies ## "echo hello world" end to end: Colonies server, operator, a process run as a Job
	$(PYTHON) hack/demo.py

up: deps venv colonies ## the ColonyOS tutorial's dev environment (Colonies, the operator, executor dev-docker)
	$(PYTHON) hack/dev-env.py up

down: venv ## removes what `make up` made, and nothing else
	$(PYTHON) hack/dev-env.py down

test: deps venv colonies lint ## the whole suite, on a real Colonies server and a real cluster
	PATH="$$(hack/build-k8s.sh):$$PATH" $(PYTHON) -m pytest $(PYTEST_ARGS)

unit: venv lint ## the unit tests: no root, no cluster, no Colonies server
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv ## the layout's import contracts (pyproject.toml)
	$(VENV)/bin/lint-imports --no-cache

image: ## the operator image as dist/colonies-operator-<version>.tar (kind, ctr, skopeo, docker load)
	@hack/image.sh

chart: ## the Helm chart as dist/colonies-operator-<version>.tgz
	@mkdir -p dist
	@"$$(hack/build-helm.sh)" package charts/colonies-operator --destination dist | sed 's|.*: ||'

deps: ## the Debian packages the tests and the demo need (root)
	@hack/install-deps.sh

venv: $(VENV)/.installed ## the virtualenv: the locked dependencies and the project, editable

# The locked dependencies (requirements/test.txt), then the project, editable; with uv, or pip without it.
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml requirements/test.txt hack/venv.sh
	@hack/venv.sh $(VENV)
	@touch $@

lock: ## remakes requirements/*.txt from pyproject.toml (LOCK_ARGS=--upgrade moves every version)
	hack/lock.sh $(LOCK_ARGS)

colonies: ## the Colonies server and CLI, built from the Go module proxy (cached)
	@hack/build-colonies.sh >/dev/null

clean: ## removes the venv, build output and dist/
	rm -rf $(VENV) .pytest_cache build dist *.egg-info operator/*.egg-info
