# The front door. Every target sets up what it needs: a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PY313 := $(shell ls -d $$(pyenv root 2>/dev/null)/versions/3.13*/bin 2>/dev/null | tail -n 1)
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test lint format typecheck build validate bench clean

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP) ## run a real sync on the embedded local stack
	$(BIN)/python -m local_stack.demo

test: $(STAMP) ## unit + integration tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m local_stack.bench

build: ## sam build with the Lambda runtime (python3.13) on PATH
	@test -n "$(PY313)" || (echo "Python 3.13 not found under pyenv" && exit 1)
	$(PY313)/python -m venv .venv-sam && .venv-sam/bin/pip install --quiet aws-sam-cli==1.170.0
	PATH="$(PY313):$$PATH" .venv-sam/bin/sam validate --lint
	PATH="$(PY313):$$PATH" .venv-sam/bin/sam build

clean:
	rm -rf $(VENV) .venv-sam .aws-sam .pytest_cache .mypy_cache .ruff_cache .local-stack
