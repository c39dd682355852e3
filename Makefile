# The README's two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast test-embedded lint format bench bench-notifier clean token check smoke test-localstack test-sam fuzz test-browser docs

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Options: make run ARGS='--env-vars settings.json --api-port 3100' (or DEVSERVER_* variables; --help lists them).
run: $(STAMP)
	$(BIN)/python -m devserver $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The database tiers on an embedded PostgreSQL, whatever TEST_DATABASE_URL says (what a fresh machine gets).
test-embedded: $(STAMP)
	env -u TEST_DATABASE_URL $(BIN)/python -m pytest -m "not slow" tests/integration/test_migrations.py \
		tests/integration/test_api.py tests/integration/test_notifier.py

# Schemathesis over the live /openapi.json of the local runtime, a larger run than `make test`'s
# (FUZZ_MAX_EXAMPLES per operation and generation mode); prints requests sent and server errors.
FUZZ_MAX_EXAMPLES ?= 500
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) $(BIN)/python -m pytest -s tests/e2e/test_fuzz.py

# The dashboard and the local inbox in a real browser: Debian's chromium (apt-get install -y chromium)
# driven by Playwright; skips, saying why, without it. Screenshots in .local/browser-artifacts/.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/browser

# docs/api.md from ApiFunction's OpenAPI document (after docs/api.intro.md); a test checks it is current.
docs: $(STAMP)
	$(BIN)/python infra/docs/api_markdown.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Prints a bearer token for EMAIL from the local issuer (the one `make run` trusts).
token: $(STAMP)
	@test -n "$(EMAIL)" || { echo "usage: make token EMAIL=you@example.com" >&2; exit 2; }
	@$(BIN)/python -m devserver.issuer token --email "$(EMAIL)"

# template.yaml without Docker or an AWS account: cfn-lint, sam validate --lint, sam build.
# SAM CLI gets its own venv (its pins clash with ours); sam build needs the runtime's python3.13.
SAM_VENV := .venv-sam
SAM      := $(SAM_VENV)/bin/sam
PY313_DIR = $(shell python3.13 -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null \
              || ls -d $$(pyenv root 2>/dev/null)/versions/3.13*/bin 2>/dev/null | tail -1)

$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli==1.170.0'

check: $(STAMP) $(SAM)
	$(BIN)/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint
	@test -n "$(PY313_DIR)" || { echo "make check: sam build needs Python 3.13 (python3.13 on PATH, or pyenv install 3.13)" >&2; exit 2; }
	@# Its own build dir: .aws-sam/build stays what `sam build` made for deploy or sam local.
	PATH="$(PY313_DIR):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM) build --cached --parallel \
		--build-dir .aws-sam/check/build --cache-dir .aws-sam/check/cache

# After `sam deploy`: a Cognito user, an event whose reminder is due in a minute, wait for it to be
# sent, clean up (infra/aws/smoke.py; your AWS credentials). TOKEN=... instead of a user pool user.
smoke: $(STAMP)
	@test -n "$(URL)" || { echo "usage: make smoke URL=<the stack's ApiUrl output>" >&2; exit 2; }
	$(BIN)/python infra/aws/smoke.py --url "$(URL)"

# With Docker (README "With Docker"); each prints what it ran. infra/ci/tiers.sh runs both for CI.
# Against LocalStack 4.14.0: with a Docker engine (compose; images pulled, or built from Debian's archive where
# no registry answers) tests/integration's AWS tests, then the stack deployed into LocalStack with our functions
# running inside it (tests/sam, the reminder flow); without one, LocalStack's host mode and the first part only.
test-localstack: $(STAMP)
	infra/ci/test-localstack.sh

# sam build + sam local start-api (locally built Lambda image, compose PostgreSQL) + tests/sam over HTTP.
test-sam: $(STAMP)
	infra/ci/test-sam.sh

# Figures, not tests (each prints what it measured; none asserts a timing): issue 11's table, one
# row per figure, "today's figure | goal | measured". TEST_DATABASE_URL if set, else an embedded PostgreSQL.
bench: $(STAMP)
	$(BIN)/python bench/api_bench.py
	$(BIN)/python bench/local_latency.py
	$(BIN)/python bench/notifier_bench.py --quick

# The notifier's figures with more rounds and samples, and a run against moto's SES (several minutes).
bench-notifier: $(STAMP)
	$(BIN)/python bench/notifier_bench.py --moto

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
