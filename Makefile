# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint venv clean reliability

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt setuptools
	$(BIN)/pip install -q -c constraints.txt -e '.[test,plot,search,export,ray]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mclx embed examples/audio demo.h5 --overwrite
	$(BIN)/mclx info demo.h5

lint: $(STAMP)
	$(BIN)/ruff check mclx tests benchmarks examples studies
	$(BIN)/ruff format --check mclx tests benchmarks examples studies
	$(BIN)/mypy

# pytest leaves .pytest-finished when its session ends (tests/conftest.py): a test that ended the
# whole process early (os._exit) would otherwise pass for a green run.
# `make test`: the fast tier (unit and integration tests, every command end to end on small inputs);
# `make test-all`: the fast and the slow tier (tests/conftest.py says which is which); CI runs it.
# One thread per process: the tests' models are tiny, and on two cores torch's threads only contend.
test: lint
	rm -f .pytest-finished
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow"
	@test -f .pytest-finished || { echo "pytest did not finish its session: a test ended the process"; exit 1; }

test-all: lint
	rm -f .pytest-finished
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest
	@test -f .pytest-finished || { echo "pytest did not finish its session: a test ended the process"; exit 1; }

# The reliability suite alone, adding up what it tried in reliability-report.json.
reliability: $(STAMP)
	rm -f reliability-report.json
	MCLX_RELIABILITY_REPORT=$(CURDIR)/reliability-report.json $(BIN)/python -m pytest tests/reliability
	cat reliability-report.json

clean:
	rm -rf $(VENV) demo.h5 demo.h5.journal
