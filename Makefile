# Two commands on a fresh machine: `make demo` and `make test`. Both run `make setup` first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JARS := .jars
DELTA_VERSION := 4.0.0
SCALA_VERSION := 2.13
DELTA_JARS := $(JARS)/delta-spark_$(SCALA_VERSION)-$(DELTA_VERSION).jar $(JARS)/delta-storage-$(DELTA_VERSION).jar
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: setup demo test test-slow bench clean-lakehouse clean

setup: $(VENV)/.installed $(DELTA_JARS) $(VENV)/.spark-defaults

$(VENV)/.installed: pyproject.toml setup.py lib/mfr/text/_ngram.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# Delta's jars are not in the delta-spark wheel: fetch them once so runs and tests work offline.
$(JARS)/delta-spark_$(SCALA_VERSION)-$(DELTA_VERSION).jar $(JARS)/delta-storage-$(DELTA_VERSION).jar:
	@mkdir -p $(JARS)
	mvn -q dependency:copy -Dartifact=io.delta:delta-spark_$(SCALA_VERSION):$(DELTA_VERSION) -DoutputDirectory=$(JARS)
	mvn -q dependency:copy -Dartifact=io.delta:delta-storage:$(DELTA_VERSION) -DoutputDirectory=$(JARS)

# The venv's own spark-submit gets Delta, the jars and the venv's Python by default.
$(VENV)/.spark-defaults: $(VENV)/.installed $(DELTA_JARS)
	$(PY) -m mfr.session --write-spark-defaults --jars-dir $(JARS)
	@touch $@

demo: setup
	$(PY) -m mfr.demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) -m bench.run

clean-lakehouse:
	rm -rf lakehouse

clean: clean-lakehouse
	rm -rf $(VENV) $(JARS) build *.egg-info lib/*.egg-info
