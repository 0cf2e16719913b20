# The README's two commands: `make run` (set up, then `dvc repro`) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Paper-scale settings for GPU nodes: `make run PROFILE=paper` (see profiles/).
PROFILE ?=

# Offline-friendly, project-local defaults (the README's "The two commands" says why).
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DVC_NO_ANALYTICS ?= 1
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
# The DVC stage commands (`python -m pipelines.stages...`) must find the venv's python.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup run sweep compare test bench gpu-check clean-venv cluster-up cluster-down cluster-demo cluster-sweep
setup: $(VENV)/.installed

# Re-installs only when the pins or the package metadata change, so a second
# `make setup` returns in well under a second.
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	# torch first and pinned: this spec takes the CPU build; anything looser pulls CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

run: setup
	$(if $(PROFILE),$(BIN)/seqgan profile $(PROFILE),)
	$(BIN)/dvc repro

# The comparison sweep (comparison/dvc.yaml): comparison.methods x comparison.seeds x both
# experiments, each cell scored over a temperature sweep; the answer is comparison/results.md.
# `make sweep ALL=1`: every method over five seeds (meant for a work pool or a GPU node).
sweep: setup
	$(if $(PROFILE),$(BIN)/seqgan profile $(PROFILE),)
	$(BIN)/seqgan sweep $(if $(ALL),--methods all --seeds 5,)

# Every method of the papers' tables on the configured seeds: the sweep with --methods all.
compare: setup
	$(if $(PROFILE),$(BIN)/seqgan profile $(PROFILE),)
	$(BIN)/seqgan sweep --methods all

# A local cluster on 127.0.0.1 for a try (README: "Sweeps on a cluster"): PostgreSQL, the MLflow
# server, a Prefect server and WORKERS process workers, each in its own clone under .cluster/.
# cluster-sweep runs this clone's sweep on it; cluster-demo: up, a 4-cell tiny sweep, a tiny
# retrain through the gate, the summary and the champion, down (non-zero if anything failed).
WORKERS ?= 2
cluster-up: setup
	$(BIN)/python -m pipelines.cluster up --workers $(WORKERS)

cluster-down:
	$(BIN)/python -m pipelines.cluster down

cluster-sweep: setup
	$(BIN)/python -m pipelines.cluster sweep

cluster-demo: setup
	$(BIN)/python -m pipelines.cluster demo --workers $(WORKERS)

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_bleu.py

# On a GPU node: the CUDA tests and the paper-scale benchmark on CUDA (<= 8 min); without
# CUDA it says so and exits 0. `make setup` installs torch 2.13.0 from PyPI, whose Linux
# wheel is a CUDA build. On an image that has its own CUDA torch and no network, name its
# python instead and nothing is installed: `make gpu-check GPU_PYTHON=python3` (the
# pipeline's tests are then skipped, with the reason, unless its packages are there too).
GPU_PYTHON ?=
gpu-check: $(if $(GPU_PYTHON),,setup)
	PYTHON=$(or $(GPU_PYTHON),$(BIN)/python) benchmarks/gpu_check.sh

clean-venv:
	rm -rf $(VENV)
