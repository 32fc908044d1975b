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

.PHONY: prereqs setup demo test lint wheel package test-compat compat-leg compat-setup-leg compat-setup prefetch test-slow test-s3 bench clean-lakehouse clean

setup: $(VENV)/.installed $(DELTA_JARS) $(VENV)/.spark-defaults

# Prerequisites: Python 3.10+ and a Java that Spark supports (17); one line names what is missing.
prereqs:
	@command -v $(PYTHON) >/dev/null || { echo "mfr setup: $(PYTHON) not found: install Python 3.10 or newer"; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "mfr setup: Python 3.10 or newer is needed ($$($(PYTHON) --version))"; exit 2; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "mfr setup: Python's venv module is missing (Debian/Ubuntu: apt-get install python3-venv)"; exit 2; }
	@command -v java >/dev/null || { echo "mfr setup: java not found: install a JDK 17 (Spark 3.5 and 4.x run on it) and put it on PATH"; exit 2; }

CONSTRAINTS ?= conf/constraints/spark-4.0.txt
# the pip extra of a constraints file's Spark line: conf/constraints/spark-4.0.txt → spark40
line_extra = $(subst .,,$(subst -,,$(basename $(notdir $(1)))))
LINE_EXTRA := $(call line_extra,$(CONSTRAINTS))

# --no-compile: no bytecode for every installed file up front (about half of pip's CPU for this set, what
# CI's background fetches take from the tests); Python compiles what is imported, once, on first use.
$(VENV)/.installed: pyproject.toml setup.py lib/mfr/text/_ngram.c $(CONSTRAINTS) | prereqs
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e '.[$(LINE_EXTRA),connect,dev,s3]' -c $(CONSTRAINTS)
	@touch $@

# Delta's jars are not in the delta-spark wheel: fetch them once (Spark's own resolver, checksums checked,
# no Maven needed) so runs and tests work offline.
$(DELTA_JARS): $(VENV)/.installed
	$(PY) -m mfr.jars --dest $(JARS) --delta-version $(DELTA_VERSION)

# The venv's own spark-submit gets Delta, the jars and the venv's Python by default.
$(VENV)/.spark-defaults: $(VENV)/.installed $(DELTA_JARS)
	$(PY) -m mfr.jars --spark-defaults --dest $(JARS)
	@touch $@

demo: setup
	$(PY) -m mfr.demo

test: setup
	$(PY) -m pytest -q

# ruff (style, bugs, imports) and mypy (types) on the package; every remaining suppression says why.
# A pure wheel (py3-none-any, prompts, default config and recipe inside) for clusters and other venvs.
DIST ?= dist
wheel: $(VENV)/.installed
	rm -rf $(DIST)/mfr-*.whl build/lib build/bdist*
	MFR_PURE_WHEEL=1 $(PY) -m pip wheel -q --no-deps --no-build-isolation -w $(DIST) .
	@ls $(DIST)/mfr-*.whl

# EMR / YARN / standalone: a packed venv with the wheel and its dependencies (Spark itself comes from the
# cluster), shipped with spark-submit --archives $(DIST)/mfr-env.tar.gz#environment (docs/emr.md). Build it
# with the Python the cluster runs (the archive links to it); for EMR 7 pick the Spark 3.5 set:
#   make package PACKAGE_CONSTRAINTS=conf/constraints/spark-3.5.txt
PACKAGE_CONSTRAINTS ?= $(CONSTRAINTS)
package: wheel
	rm -rf $(DIST)/pack-venv $(DIST)/mfr-env.tar.gz
	$(PYTHON) -m venv $(DIST)/pack-venv
	$(DIST)/pack-venv/bin/python -m pip install -q "$$(ls $(DIST)/mfr-*.whl | head -1)[s3]" -c $(PACKAGE_CONSTRAINTS)
	$(VENV)/bin/venv-pack -q -p $(DIST)/pack-venv -o $(DIST)/mfr-env.tar.gz
	rm -rf $(DIST)/pack-venv
	@ls -la $(DIST)/mfr-env.tar.gz

lint: setup
	$(VENV)/bin/ruff check lib/
	$(VENV)/bin/mypy

test-slow: setup
	$(PY) -m pytest -q -m slow

# make test's and make test-slow's tests in one pytest process (CI): one JVM warmed once, one Connect server,
# one wheel and each shared lakehouse built once for both suites; the run ends by printing each suite's time.
test-all: setup
	$(PY) -m pytest -q -m "not s3"

# Object stores: a moto S3 server on 127.0.0.1, hadoop-aws matching pyspark's Hadoop (its AWS SDK bundle
# is ~530 MB, fetched once into .jars-s3 by Spark's resolver), the whole pipeline and a SIGKILL on s3a://.
S3_JARS := .jars-s3
$(S3_JARS)/.fetched: $(VENV)/.installed
	$(PY) -m mfr.jars --s3a --dest $(S3_JARS)
	@touch $@

test-s3: setup $(S3_JARS)/.fetched
	MFR_S3_JARS=$(abspath $(S3_JARS)) $(PY) -m pytest -q -m s3 tests/test_s3.py

bench: setup
	$(PY) -m bench.run --marginal-rows 1000000 --real-copies 1000  # collect also at 1M rows and on 1000 copies of the real sample
	$(PY) -m bench.run scale
	$(PY) -m bench.run incremental  # a lakehouse of 100k rows, then 1 % more: four pipelines side by side

clean-lakehouse:
	rm -rf lakehouse

clean: clean-lakehouse
	rm -rf $(VENV) $(JARS) build *.egg-info lib/*.egg-info

# Other Spark/Delta legs: a venv and jars per leg (fetched once, offline afterwards), the Spark suites there.
# The same golden funnel must come out on every leg.
COMPAT_LEGS ?= spark-3.5 spark-4.1 spark-4.2
# Each leg runs what differs by Spark or Delta version (tests marked `compat`): the golden funnel (every row's
# stage and reason end to end, idempotent commits and time travel included), MERGE claims and the conflicts
# Delta raises, RESTORE, healing, table properties, the Spark steps on small DataFrames and the hub client's
# versions, and `--json` output with a package resolved at session start. The rest runs once, on the default leg.
COMPAT_TESTS ?= tests/test_transforms.py tests/test_runs.py tests/test_lakehouse.py tests/test_hub.py tests/test_golden_funnel.py \
	tests/test_cli.py
# Databricks' standard access mode on LTS runtimes is Spark 3.5 over Spark Connect: that leg runs the
# Connect suite too (a local Connect server of its own version, its jar fetched by compat-setup-leg); its
# client's packages are checked first, so the suite runs there rather than skips.
COMPAT_CONNECT_LEGS ?= spark-3.5
# A leg's Python, as the Databricks runtime it stands for runs: 3.11 for Spark 3.5 (15.4 LTS), 3.12 for Spark
# 4.1 and 4.2 (16.4 and 17.x), on PATH or under pyenv; else $(PYTHON). A leg's pins have wheels for the
# Pythons in LEG_PYTHONS_<leg> only (numpy 1.23 none for 3.12, Pillow 13 and pyarrow 26 none for 3.10): on
# another, one line says so. `make compat-leg` says which ran; a leg's venv is made again when its Python changes.
# (LEG_PYTHON is expanded once: the search runs once per make, not at each use)
find_python = $(shell for p in python$(1) $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)); do \
	$$p -c 'import sys; assert "%d.%d" % sys.version_info[:2] == "$(1)"' 2>/dev/null && echo $$p && break; done)
LEG_PYTHON_spark-3.5 ?= $(call find_python,3.11)
LEG_PYTHON_spark-4.1 ?= $(call find_python,3.12)
LEG_PYTHON_spark-4.2 ?= $(call find_python,3.12)
LEG_PYTHON := $(or $(LEG_PYTHON_$(LEG)),$(PYTHON))
LEG_PYTHONS_spark-3.5 ?= 3.10 3.11
LEG_PYTHONS_spark-4.1 ?= 3.11 3.12 3.13
LEG_PYTHONS_spark-4.2 ?= 3.11 3.12 3.13
# what a leg's venv was installed from: installed again when it changes
LEG_STAMP = cat pyproject.toml conf/constraints/$(LEG).txt
test-compat: prereqs
	@for leg in $(COMPAT_LEGS); do $(MAKE) --no-print-directory compat-leg LEG=$$leg || exit 1; done

compat-leg: compat-setup-leg
	@echo "== $(LEG): $$(.venv-$(LEG)/bin/python -c 'import sys, pyspark, importlib.metadata as m; print("Python", sys.version.split()[0], "pyspark", pyspark.__version__, "delta-spark", m.version("delta-spark"), "pandas", m.version("pandas"), "pyarrow", m.version("pyarrow"), "numpy", m.version("numpy"))')"
	$(if $(filter $(LEG),$(COMPAT_CONNECT_LEGS)),.venv-$(LEG)/bin/python -c 'import grpc; import pyspark.sql.connect.session')
	MFR_LEG=$(LEG) MFR_JARS_DIR=$(abspath .jars-$(LEG)) PYSPARK_PYTHON=$(abspath .venv-$(LEG)/bin/python) \
		PYSPARK_DRIVER_PYTHON=$(abspath .venv-$(LEG)/bin/python) \
		.venv-$(LEG)/bin/python -m pytest -q -m "compat and not s3" $(COMPAT_TESTS) \
		$(if $(filter $(LEG),$(COMPAT_CONNECT_LEGS)),tests/test_connect.py)

# A leg's venv and jars (network only: CI fetches them in the background while the default leg's tests run).
compat-setup-leg: prereqs
	@test -n "$(LEG)" || { echo "usage: make compat-leg LEG=spark-3.5"; exit 2; }
	@v=$$($(LEG_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])') && \
		case " $(or $(LEG_PYTHONS_$(LEG)),$$v) " in *" $$v "*) ;; *) \
			echo "mfr setup: the $(LEG) leg's pins need Python $(LEG_PYTHONS_$(LEG)) ($(LEG_PYTHON) is $$v): set LEG_PYTHON_$(LEG)"; \
			exit 2;; esac
	@want=$$($(LEG_PYTHON) -c 'import sys; print(sys.version.split()[0])') && \
		have=$$(.venv-$(LEG)/bin/python -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || true) && \
		if [ "$$want" != "$$have" ]; then rm -rf .venv-$(LEG) && $(LEG_PYTHON) -m venv .venv-$(LEG); fi
	@$(LEG_STAMP) | cmp -s - .venv-$(LEG)/.installed || { \
		.venv-$(LEG)/bin/python -m pip install -q --upgrade pip && \
		.venv-$(LEG)/bin/python -m pip install -q --no-compile -e '.[$(call line_extra,$(LEG).txt),connect,dev]' -c conf/constraints/$(LEG).txt && \
		$(LEG_STAMP) > .venv-$(LEG)/.installed; }
	.venv-$(LEG)/bin/python -m mfr.jars --dest .jars-$(LEG)
	.venv-$(LEG)/bin/python -m mfr.jars --connect --dest .jars-$(LEG)

compat-setup: prereqs
	@for leg in $(COMPAT_LEGS); do $(MAKE) --no-print-directory compat-setup-leg LEG=$$leg || exit 1; done

# Everything later CI targets download (compat venvs and jars, the S3 jars), fetched up front.
prefetch: compat-setup $(S3_JARS)/.fetched
