# shapelib — two commands do all set-up:  `make reproduce`  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
export MPLBACKEND ?= Agg
export OMP_NUM_THREADS ?= 2
export KEOPS_VERBOSE ?= 0
export PYKEOPS_VERBOSE ?= 0
export PYTHONHASHSEED ?= 0

.PHONY: all venv test test-py test-nb reproduce lab bench clean strip checks

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
	SHAPELIB_SCALE=$${SHAPELIB_SCALE:-quick} $(PY) -m pytest -q tests/
	SHAPELIB_SCALE=$${SHAPELIB_SCALE:-quick} $(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks/

test-py: venv
	SHAPELIB_SCALE=$${SHAPELIB_SCALE:-quick} $(PY) -m pytest -q tests/

test-nb: venv
	SHAPELIB_SCALE=$${SHAPELIB_SCALE:-quick} $(PY) -m pytest -q --nbval-lax --nbval-current-env notebooks/

# Executes every notebook headless, writes results/*.html and results/REPORT.md.
# Scale: `standard` on CPU, `full` when a CUDA GPU is present (override with SHAPELIB_SCALE=...).
reproduce: venv
	$(PY) -m shapelib.reproduce --out results

bench: venv
	for b in operators diffusionnet zoomout meps implicit cpnet; do $(PY) benchmarks/$$b.py || exit 1; done

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

# Developers: re-execute notebooks at quick scale and store only the NBVAL_CHECK_OUTPUT cells'
# outputs (everything else stripped). NB=01 limits it to one notebook.
checks: venv
	$(PY) -m shapelib.reproduce --store-checks $(if $(NB),--only $(NB))

# Strip outputs (keeping cells tagged keep_output) before committing notebooks.
strip: venv
	$(VENV)/bin/nbstripout --keep-id notebooks/*.ipynb

clean:
	rm -rf $(VENV) .cache results/*.html
