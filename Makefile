# metisnet: the two commands of the README, and the pieces they are built from.
# Every target installs what it needs into .venv by itself; nothing installed by hand is used.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.metisnet-installed

.PHONY: demo test lint types layers unit install lock clean bench anvil chromium fuzz devnet devnet-down

## demo: the main job, the local demo network
demo: $(STAMP) anvil
	$(BIN)/metis demo

## test: the whole suite (lint, types, layering, pytest)
test: $(STAMP) lint types layers unit

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy src/metisnet

layers: $(STAMP)
	$(BIN)/lint-imports

## anvil: the pinned standalone anvil binary (for the chain tests against a JSON-RPC node)
anvil:
	scripts/install-anvil.sh

## chromium: Debian's headless browser, for the explorer's browser test (needs root)
chromium:
	@command -v chromium >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

unit: $(STAMP) anvil chromium
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/metis bench

## devnet: the local multi-process network (anvil, 3 data nodes, 6 compute nodes) in .devnet/
devnet: $(STAMP) anvil
	$(BIN)/metis devnet up

devnet-down: $(STAMP)
	$(BIN)/metis devnet down

## fuzz: the long wire-format fuzz run (the suite runs a bounded one)
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz_wire.py --cases 1000000

## lock: regenerate requirements.lock from the current .venv (after changing pins)
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^metisnet' > requirements.lock
	echo "setuptools==$$($(BIN)/python -c 'import setuptools; print(setuptools.__version__)')" >> requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
