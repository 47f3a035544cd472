PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export BPTRAIN_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install demo test lint bench clean

$(BIN)/bptrain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/bptrain

demo: install
	$(BIN)/bptrain fit configs/mnist_mlp.yaml

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check bptrain tests bench
	$(BIN)/ruff format --check bptrain tests bench

bench: install
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) runs .pytest_cache
