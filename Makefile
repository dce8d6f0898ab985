# One command each: `make demo` installs and segments a shared BraTS case with the bundled model;
# `make test` installs with the test extras and runs the default (fast) test suite.
PY ?= python3
DATA ?= $(or $(MEDSEG3D_DATA),../shared/data)
CASE ?= $(DATA)/brats2018/Brats18_2013_2_1
# the Python code ruff checks and formats (Markdown code blocks are left alone)
PYTHON_DIRS = src tests benchmarks validation scripts archive

.PHONY: install install-dev demo test test-slow test-integration lint bench

# torch is installed first on its own: on a machine without it, `pip install torch==2.13.0` takes the CPU
# build where one is provided locally instead of pulling several GB of CUDA wheels through a loose range.
install:
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e .

install-dev:
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[dev]"

demo: install
	medseg3d predict brats $(CASE) -o demo/tumour.nii.gz --force
	medseg3d show $(CASE) --pred demo/tumour.nii.gz -o demo/overlay.png

test: install-dev
	$(PY) -m pytest -q

test-slow: install-dev
	$(PY) -m pytest -q -m slow

# The end-to-end tests (tests/integration, slow ones included), among them the round trip through a real Orthanc.
# Installs the Debian package `orthanc` when its binary is missing (needs root, or sudo); the test starts its own
# Orthanc on loopback ports and stops it.
# CI (a Debian/Ubuntu runner): `make test-integration`
test-integration: install-dev
	command -v Orthanc >/dev/null || { if [ "$$(id -u)" = 0 ]; then S=; else S=sudo; fi; \
		$$S apt-get update && $$S apt-get install -y orthanc; }
	$(PY) -m pytest -q -m "slow or not slow" tests/integration

lint:
	ruff check $(PYTHON_DIRS)
	ruff format --check $(PYTHON_DIRS)

bench:
	$(PY) benchmarks/run.py
