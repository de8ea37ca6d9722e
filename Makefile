# shapelib — two commands do all set-up:  `make reproduce`  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
# Threads per process come from shapelib.config (SHAPELIB_THREADS, default 1). MPLBACKEND=Agg is set
# only for the headless targets below: exported to `make lab` it would hide every figure.
HEADLESS := MPLBACKEND=Agg
export KEOPS_VERBOSE ?= 0
export PYKEOPS_VERBOSE ?= 0
export PYTHONHASHSEED ?= 0

.PHONY: all venv test test-py test-nb reproduce train lab bench gpu-check clean strip checks

all: test

# The venv is (re)built when pyproject.toml changes; torch is installed pinned first so
# that no later requirement pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]" "$(TORCH)"
	$(PY) -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

# `quick` scale: small but meaningful (trained models must still beat their baselines).
test: venv
	$(HEADLESS) SHAPELIB_SCALE=$${SHAPELIB_SCALE:-quick} $(PY) -m pytest -q tests/
	$(HEADLESS) SHAPELIB_SCALE=$${SHAPELIB_SCALE:-quick} $(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks/

test-py: venv
	$(HEADLESS) SHAPELIB_SCALE=$${SHAPELIB_SCALE:-quick} $(PY) -m pytest -q tests/

test-nb: venv
	$(HEADLESS) SHAPELIB_SCALE=$${SHAPELIB_SCALE:-quick} $(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks/

# Executes every notebook headless, writes results/*.html and results/REPORT.md.
# Scale: `lab` on CPU (paper numbers from the shipped trained models; ~30 min on 2 cores), `full` when a
# CUDA GPU is present; `make reproduce SHAPELIB_SCALE=standard` for the hours-long CPU run.
reproduce: venv
	SHAPELIB_SCALE=$${SHAPELIB_SCALE:-$$($(PY) -c 'from shapelib import config; print(config.batch_scale())')} $(PY) -m shapelib.experiments.reproduce --out results

# Paper-protocol models (resumable; CUDA when present): `make train`, `make train MODEL=name`,
# `make train MODEL=name TRAIN_ARGS="--max-minutes 60"`; `make train-list` shows each one's state.
# Data-parallel (README, "Training on several GPUs / processes"): `make train MODEL=name NPROC=k` runs
# `torchrun --nproc_per_node k -m shapelib.experiments train name` (one GPU per process with CUDA, nccl;
# else k CPU processes, gloo), the protocol's steps unchanged (NPROC <= its batch_size). Several
# machines: the same command on each, with torchrun's rendezvous flags passed through, e.g.
# `make train MODEL=name NPROC=4 TORCHRUN_ARGS="--nnodes 2 --rdzv-backend c10d --rdzv-endpoint host:29500 --rdzv-id run1"`.
train: venv
	$(PY) -m shapelib.experiments train $(MODEL) $(TRAIN_ARGS)$(if $(NPROC), --nproc '$(NPROC)')$(if $(TORCHRUN_ARGS), --torchrun-args='$(TORCHRUN_ARGS)')

train-list: venv
	$(PY) -m shapelib.experiments list

bench: venv
	for b in operators diffusionnet zoomout meps implicit cpnet; do $(PY) benchmarks/$$b.py || exit 1; done

# GPU verification (README, "GPU verification"): correctness on the device, then timings and peak
# memory -> benchmarks/results/gpu.json. Needs no venv: on a GPU machine the image's python3 plus
# the wheels of benchmarks/gpu_wheels.sh suffice. Without CUDA it runs its CPU smoke mode.
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	OMP_NUM_THREADS=$$(nproc) $(GPU_PY) benchmarks/gpu_check.py $(ARGS)

# `make lab PORT=8890 LAB_ARGS="--no-browser --ip=0.0.0.0"`; works as root (adds --allow-root).
# Kernels get SHAPELIB_SCALE=lab (every notebook in minutes on one CPU thread) unless
# SHAPELIB_SCALE is set: `SHAPELIB_SCALE=standard make lab` (or `make lab SHAPELIB_SCALE=standard`).
PORT ?= 8888
LAB_ARGS ?=
LAB_SCALE = $(or $(SHAPELIB_SCALE),lab)
lab: venv
	@SHAPELIB_SCALE=$(LAB_SCALE) $(PY) -c 'from shapelib import config; print(f"shapelib: {config.scale_hint()}\nshapelib: data looked for in {config.data_root()} (set SHAPELIB_DATA to change; python -m shapelib.data status lists it), {config.threads()} thread(s) per kernel (SHAPELIB_THREADS)")'
	env -u MPLBACKEND SHAPELIB_SCALE=$(LAB_SCALE) $(VENV)/bin/jupyter lab notebooks/ --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Developers: re-execute notebooks at quick scale and store only the NBVAL_CHECK_OUTPUT cells'
# outputs (everything else stripped). NB=01 limits it to one notebook.
checks: venv
	$(PY) -m shapelib.experiments.reproduce --store-checks $(if $(NB),--only $(NB))

# Strip outputs (keeping cells tagged keep_output) before committing notebooks.
strip: venv
	$(VENV)/bin/nbstripout --keep-id notebooks/*.ipynb

clean:
	rm -rf $(VENV) .cache results/*.html
