# The commands of the README: `make demo`, `make test` and `make test-all`. Each creates
# the virtual environment on first use and reinstalls when pyproject.toml or
# constraints.txt change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-dev
EXTRAS ?= dev

.PHONY: install demo test test-all browser docs lint format clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# constraints.txt pins torch to the CPU build on these machines (see README).
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[$(EXTRAS)]'
	touch $@

install: $(INSTALLED)

# The package's best model that trains in minutes: the student distilled from BirdNET.
demo: $(INSTALLED)
	$(BIN)/python examples/plot_distilled_student.py

# The quick suite: every test but those marked slow (examples, the docs build, the
# browser, BirdNET in a subprocess, a 30-epoch fit).
test: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow"

# The whole suite, slow tests included: what CI runs.
test-all: $(INSTALLED) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The browser test of the review page (tests/test_review.py) drives Debian's chromium with
# selenium. Installed here when missing and apt-get can (as root, ~35 s); otherwise that
# test skips and says why. Never fails the build.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium and chromium-driver for the browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver >/dev/null) \
		|| echo "chromium not installed (apt-get failed): the browser test will skip"; \
	else \
		echo "chromium not installed (needs root and apt-get): the browser test will skip"; \
	fi

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
