# The front door. Every target sets up what it needs: a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Lambda runtime's Python, which `sam build` wants on PATH: pyenv's 3.13, else a python3.13 on PATH.
PY313 := $(or $(shell ls -d $$(pyenv root 2>/dev/null)/versions/3.13*/bin 2>/dev/null | tail -n 1),$(patsubst %/,%,$(dir $(shell command -v python3.13 2>/dev/null))))
# SAM CLI's dependencies conflict with the dev ones: it gets its own virtual environment, pinned.
SAM_CLI_VERSION := 1.170.0
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)
SAM_PATH := PATH="$(PY313):$$PATH"
# checkov pins its own boto3 (and much else) against ours: it gets its own virtual environment, pinned.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
# Every pinned requirements file: what pip-audit checks.
PINNED_REQUIREMENTS := requirements-dev.txt layers/account_sync/requirements.txt functions/fetch_changes/requirements.txt \
	functions/push_changes/requirements.txt \
	functions/convert_person/requirements.txt
# Libraries that only the fetch, push and Convert Person functions may ship (see docs/decisions.md).
SALESFORCE_ONLY := simple_salesforce zeep lxml
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test lint format typecheck build validate bench clean chaos

# uv installs the pinned requirements: 7 s where pip takes 30 (docs/decisions.md, "Installing with uv"). pip
# installs uv itself, pinned, into the venv: nothing is needed beforehand but python3.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
UV_STAMP := $(VENV)/.installed-uv-$(UV_VERSION)
# --compile-bytecode: pip compiled what it installed, uv does not by default; with PYTHONDONTWRITEBYTECODE (below)
# every process would compile moto, botocore... again when it imports them (0.5 s a process start).
UV_INSTALL := $(UV) pip install --quiet --compile-bytecode

# A checkout whose .venv pip made before uv came gets uv added to it (`venv` keeps what an existing one holds).
$(UV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	touch $@

$(STAMP): $(UV_STAMP) requirements-dev.txt pyproject.toml
	$(UV_INSTALL) --python $(BIN)/python -r requirements-dev.txt
	$(UV_INSTALL) --python $(BIN)/python --no-deps --editable .  # the `account-sync` command (pyproject.toml)
	touch $(STAMP)

demo: $(STAMP) ## run a real sync on the embedded local stack
	PYTHONPATH=local:layers/account_sync $(BIN)/python -m local_stack.demo $(DEMO_ARGS)

# One worker per core, a test file per worker: a file's module fixtures (a running `up`) are set up once.
# PYTEST_ARGS adds options, e.g. PYTEST_ARGS=--durations=30.
test: $(STAMP) ## unit + integration tests, in parallel (pytest-xdist)
	$(BIN)/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

# The model-based suite of the fan-out, long and random (tests/model): CHAOS_EXAMPLES examples per machine on the
# fakes (9 machines: the healthy one, each family of issue 10, PUSH_EVENTS, all at once) and a twentieth of them on
# moto (3 machines: healthy, PUSH_EVENTS, all), a printed seed (CHAOS_SEED=... replays a run), the examples run per
# machine and every divergence's minimal steps at the end. The machines are independent tests, spread over
# CHAOS_WORKERS processes (pytest-xdist; each machine's examples depend on the seed only, not on the worker).
CHAOS_EXAMPLES ?= 1000
CHAOS_WORKERS ?= 2
# Drawn once (`:=`): a recursively expanded `?=` drew one seed for the echo and another for the run.
ifeq ($(origin CHAOS_SEED), undefined)
CHAOS_SEED := $(shell $(PYTHON) -c 'import random; print(random.randrange(2**32))')
endif
chaos: $(STAMP) ## the model-based suite, long: make chaos CHAOS_EXAMPLES=5000 [CHAOS_SEED=N]
	@echo "make chaos: CHAOS_EXAMPLES=$(CHAOS_EXAMPLES) CHAOS_SEED=$(CHAOS_SEED) CHAOS_WORKERS=$(CHAOS_WORKERS)"
	CHAOS_EXAMPLES=$(CHAOS_EXAMPLES) $(BIN)/python -m pytest tests/model/test_chaos.py -p no:logging \
		-n $(CHAOS_WORKERS) --dist worksteal --hypothesis-seed=$(CHAOS_SEED) -q -rf --tb=short --show-capture=no

lint: $(STAMP) $(CHECKOV_STAMP) ## ruff, mypy, cfn-lint (+ serverless rules), checkov, bandit, pip-audit
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml --append-rules cfn_lint_serverless.rules
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download
	$(BIN)/bandit --configfile pyproject.toml --quiet --recursive layers functions cli
	$(BIN)/python local/dependency_audit.py $(PINNED_REQUIREMENTS)

$(CHECKOV_STAMP): $(UV_STAMP)
	rm -rf $(CHECKOV_VENV)
	$(UV) venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	$(UV_INSTALL) --python $(CHECKOV_VENV)/bin/python checkov==$(CHECKOV_VERSION)
	touch $@

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(UV_INSTALL) --python $(BIN)/python -r requirements-bench.txt
	touch $@

# The cold-start target imports the handlers with the Lambda runtime's Python and only what the artefacts ship.
RUNTIME_VENV := .venv-runtime
RUNTIME_REQUIREMENTS := layers/account_sync/requirements.txt functions/fetch_changes/requirements.txt \
	functions/convert_person/requirements.txt
RUNTIME_STAMP := $(RUNTIME_VENV)/.installed
$(RUNTIME_STAMP): $(RUNTIME_REQUIREMENTS)
	@test -n "$(PY313)" || (echo "Python 3.13 not found (pyenv or python3.13 on PATH)" && exit 1)
	rm -rf $(RUNTIME_VENV)
	$(PY313)/python3.13 -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install --quiet --upgrade pip
	$(RUNTIME_VENV)/bin/pip install --quiet $(addprefix -r ,$(RUNTIME_REQUIREMENTS))
	touch $@

bench: $(STAMP) $(BENCH_STAMP) $(RUNTIME_STAMP) ## what a sync costs, against size (bench/results.md, bench/cost.png); BENCH_ARGS=--large adds 100k contacts
	PYTHONPATH=local:layers/account_sync $(BIN)/python -m local_stack.bench --runtime-python $(RUNTIME_VENV)/bin/python $(BENCH_ARGS)

$(SAM_STAMP):
	@test -n "$(PY313)" || (echo "Python 3.13 not found (pyenv or python3.13 on PATH)" && exit 1)
	rm -rf $(SAM_VENV)
	$(PY313)/python3.13 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

# pip downloads the dependencies as arm64 (manylinux aarch64) wheels: no container and no emulation are
# needed while every compiled dependency publishes such a wheel (all of ours do: cryptography, cffi, lxml,
# wrapt, charset-normalizer). One that ships only an sdist with native code would fail the build here.
build: $(SAM_STAMP) ## sam validate --lint, then sam build (arm64, python3.13) into .aws-sam/build
	$(SAM_PATH) $(SAM) validate --lint
	$(SAM_PATH) $(SAM) build
	@for artefact in .aws-sam/build/FanOutFunction .aws-sam/build/ActivityLogFunction .aws-sam/build/MarketingApiFunction \
		.aws-sam/build/SharedLayer; do \
		for lib in $(SALESFORCE_ONLY); do \
			if find $$artefact -maxdepth 2 -name $$lib | grep -q .; then \
				echo "$$artefact ships $$lib: only the fetch and Convert Person functions may"; exit 1; \
			fi; \
		done; \
	done
	@du -sh .aws-sam/build/*/

clean:
	rm -rf $(VENV) .venv-sam $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .local-stack
