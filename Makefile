# trainlab: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-mlflow lock release train report test test-slow test-full lint format typecheck hooks pre-commit ci new-project bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# Every package pinned and hashed (locks/, made from constraints.txt by `make lock`): pip checks
# each file it installs and installs nothing unlisted; then trainlab itself, editable.
$(STAMP): pyproject.toml constraints.txt locks/all-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r locks/all-dev.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

install: $(STAMP)  ## create .venv and install trainlab, every extra but MLflow, hash-locked

install-mlflow: $(STAMP)  ## add the optional MLflow logger (~400 MB)
	$(BIN)/python -m pip install -q --require-hashes -r locks/all-dev-mlflow.txt
	$(BIN)/python -m pip check

release: $(STAMP)  ## VERSION=x.y.z: bump pyproject and CHANGELOG, build wheel and sdist into dist/ (none: build as is)
	$(BIN)/python scripts/release.py $(VERSION)

lock:  ## remake locks/ from constraints.txt (needs the package index); check: LOCK=--check
	$(PYTHON) scripts/lock.py $(LOCK)

train: $(STAMP)  ## train the default experiment (digits MLP); ARGS="net=cnn ..." adds overrides
	$(BIN)/python -m trainlab.train $(ARGS)

report: $(STAMP)  ## report over runs: DIR=<sweep dir | run dirs | glob>
	$(BIN)/python -m trainlab.report $(DIR) $(ARGS)

test: $(STAMP)  ## the fast tests
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

test-slow: $(STAMP)  ## only the slow end-to-end tests (sweeps, DDP, trackers)
	$(BIN)/python -m pytest -q -m slow $(ARGS)

test-full: $(STAMP)  ## every test, the slow end-to-end ones included
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(STAMP)  ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check src tests scripts templates
	$(BIN)/ruff format --check src tests scripts templates
	$(BIN)/mypy

format: $(STAMP)  ## format and fix what ruff can
	$(BIN)/ruff format src tests scripts templates
	$(BIN)/ruff check --fix src tests scripts templates

typecheck: $(STAMP)  ## mypy on src/ and scripts/
	$(BIN)/mypy

hooks: $(STAMP)  ## install the git pre-commit hooks (ruff and mypy from .venv, offline)
	$(BIN)/pre-commit install

pre-commit: $(STAMP)  ## run the pre-commit hooks on every file
	$(BIN)/pre-commit run --all-files

ci:  ## what CI runs: install, lint, the fast and the slow tests (.ci/run)
	.ci/run

new-project:  ## NAME=myproj [DEST=../myproj]: MODE=thin (own parts, trainlab pinned) or a full copy [EXAMPLES=drop]
ifeq ($(MODE),thin)
	$(MAKE) install
	$(BIN)/python scripts/thin_project.py create --name "$(NAME)" $(if $(DEST),--dest "$(DEST)")
else
	$(PYTHON) scripts/new_project.py --name "$(NAME)" $(if $(DEST),--dest "$(DEST)") --examples $(or $(EXAMPLES),keep)
endif

bench: $(STAMP)  ## compare trainlab with a hand-written PyTorch loop (see README)
	$(BIN)/python scripts/benchmark.py $(ARGS)

clean:  ## remove run outputs and caches (not .venv)
	rm -rf logs outputs multirun .pytest_cache .mypy_cache .ruff_cache
