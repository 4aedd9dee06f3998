# benchbot: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A second device interpreter: tflite-runtime 2.14 (what Raspberry Pi OS users install), numpy<2, no psutil.
TRT_VENV ?= .venv-tflite214
# TensorFlow 2.14 (the converter whose op versions tflite-runtime 2.14 accepts): `models convert` tests and `make zoo`.
TF_VENV ?= .venv-tf

.PHONY: demo test setup test-setup system-deps lint bench zoo clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(TRT_VENV)/.installed:
	$(PYTHON) -m venv $(TRT_VENV)
	$(TRT_VENV)/bin/pip install -q 'tflite-runtime==2.14.0' 'numpy<2'
	touch $@

$(TF_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install -q 'tensorflow-cpu==2.14.1' 'numpy<2' pytest -e .
	touch $@

setup: $(BIN)/.installed

## demo: set up, benchmark the bundled model zoo on this machine, show the report
demo: setup
	$(BIN)/benchbot run
	$(BIN)/benchbot report

test-setup: $(BIN)/.installed-test $(TRT_VENV)/.installed $(TF_VENV)/.installed system-deps

## test: install what the tests need (Debian packages when root) and run the whole suite
test: test-setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	BENCHBOT_QEMU=1 BENCHBOT_TFLITE214_PYTHON=$(abspath $(TRT_VENV))/bin/python \
	BENCHBOT_TF_PYTHON=$(abspath $(TF_VENV))/bin/python $(BIN)/python -m pytest $(PYTEST_ARGS)
	# the converter library itself, in the interpreter that has TensorFlow
	$(TF_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_convert.py

system-deps:
	bash scripts/system-deps.sh

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: benchbot's own benchmarks, ~7 min on 2 cores (bench/README.md); BENCH_ARGS=--quick for a smoke run
bench: $(BIN)/.installed-test
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

## zoo: rebuild the bundled models (TensorFlow 2.14 in its own venv; outputs are committed)
zoo: $(TF_VENV)/.installed
	$(TF_VENV)/bin/python -m benchbot.models.build_zoo

clean:
	rm -rf $(VENV) $(TRT_VENV) $(TF_VENV)
