PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export BPTRAIN_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install dev demo test lint bench clean

# The virtual environment with bptrain, its own dependencies and its fused kernels (the `fast`
# extra: Numba): all that `make demo` needs.
$(BIN)/bptrain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[fast]'
	touch $@

# What the tests, lint and benchmarks need besides: pytest, hypothesis, ruff, Dask and MPI
# (the `dev` extra of pyproject.toml).
$(VENV)/.dev: $(BIN)/bptrain
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/bptrain

dev: $(VENV)/.dev

demo: install
	$(BIN)/bptrain fit configs/mnist_mlp.yaml

test: dev
	$(BIN)/python -m pytest

lint: dev
	$(BIN)/ruff check bptrain tests bench
	$(BIN)/ruff format --check bptrain tests bench

bench: dev
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) runs .pytest_cache
