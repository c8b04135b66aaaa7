# vend-sidecar developer entry points. Every target sets itself up from scratch:
# a fresh clone needs only python3 (>= 3.11), make and, for `make lint`, kubectl.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= ./creds

.PHONY: test lint dev bench clean

# The virtualenv is rebuilt whenever pyproject.toml changes.
$(VENV)/.installed-test: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench,test]'
	touch $@

## test: install everything into .venv, lint the deployables, run the whole suite
test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest

## lint: manifests and Dockerfile checks (kubectl kustomize, kubernetes-validate, hadolint)
lint: $(VENV)/.installed-test
	@if [ -x scripts/lint.sh ]; then PATH="$(CURDIR)/$(BIN):$$PATH" scripts/lint.sh; fi

## dev: the whole flow on loopback (issuer, vending service, moto S3/STS, sidecar)
dev: $(VENV)/.installed-dev
	$(BIN)/vend-sidecar dev --out $(OUT)

## bench: benchmarks; writes docs/performance.md and the herd plot
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .hypothesis creds
