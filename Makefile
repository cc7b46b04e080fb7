# The two commands of the README: `make demo` and `make test`. Both create the virtual
# environment on first use and reinstall when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-dev
EXTRAS ?= dev

.PHONY: install demo test docs lint format clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# constraints.txt pins torch to the CPU build on these machines (see README).
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[$(EXTRAS)]'
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/python examples/plot_train_classifier.py
	$(BIN)/python examples/plot_detect_soundscape.py

test: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# HTML under docs/_build/html; any warning fails the build. The examples are not run.
docs: $(INSTALLED)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache .hypothesis docs/_build docs/auto_examples
