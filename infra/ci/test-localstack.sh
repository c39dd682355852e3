#!/usr/bin/env bash
# `make test-localstack`: our code against LocalStack 4.14.0, in two parts.
#   1. the tests/integration tests that talk to AWS (infra/ci/pytest_aws_only.py; the rest use no AWS
#      service and run in `make test`), with AWS_ENDPOINT_URL: the handlers in pytest, LocalStack's SES
#      and Secrets Manager behind them.
#   2. (compose mode) the stack deployed into LocalStack, with our functions running inside it: sam build
#      + infra/localstack/deploy.sh (sam deploy, migrations by MigrateFunction), then tests/sam through
#      LocalStack's API Gateway (its Lambda runs the token authorizer and ApiFunction), and the
#      reminder flow: its EventBridge rule fires NotifierFunction, whose email lands in /_aws/ses.
#
# Where LocalStack comes from (LOCALSTACK_MODE=auto|compose|host, default auto):
#   compose  docker-compose.yml's services, when a Docker engine runs: localstack/localstack:4.14.0 and
#            postgres:16 when they can be pulled, else the stand-ins infra/docker/build-images.sh builds
#            from Debian's archive (compose.local-images.yml). Lambda functions run in containers of the
#            python3.13 image (with the built layer at /opt) and our runtime init (infra/localstack).
#   host     otherwise: LocalStack's host mode (PyPI's localstack-core==4.14.0 on Python 3.13, in
#            .venv-localstack), and the database from TEST_DATABASE_URL, this machine's PostgreSQL
#            on 127.0.0.1:5432, or the embedded one the tests start. Part 1 only: no functions run.
# Host ports: LocalStack on 4566 and compose postgres on 55432 when free, else ports the kernel hands out
# (LOCALSTACK_PORT / POSTGRES_PORT fix them).
# Prints what ran and whether functions ran inside LocalStack; exits non-zero when LocalStack could
# not be started or a test failed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

mode="${LOCALSTACK_MODE:-auto}"
port="${LOCALSTACK_PORT:-$(port_or_free 4566)}"
endpoint="http://127.0.0.1:$port"
image="localstack/localstack:$LOCALSTACK_VERSION"
services="ses,lambda,events,secretsmanager,sqs,apigateway,logs,iam,sts,cloudformation,s3,sns,cloudwatch"
project="event-reminders-ci"
# Its own network: the README's stack (network event-reminders) may be up beside it.
export COMPOSE_NETWORK="$project"
started=$(date +%s)

if curl -s -o /dev/null "$endpoint" 2>/dev/null; then
  echo "test-localstack: something already listens on $endpoint; stop it or set LOCALSTACK_PORT" >&2
  exit 2
fi

official_images() {
  local i
  for i in "$image" postgres:16; do
    docker image inspect "$i" >/dev/null 2>&1 || timeout 120 docker pull -q "$i" >/dev/null 2>&1 || return 1
  done
}
compose_files=(-f docker-compose.yml)
if [ "$mode" = auto ]; then
  if docker info >/dev/null 2>&1; then
    mode=compose
  else
    mode=host
    say "no Docker engine running: using LocalStack's host mode (no function runs inside LocalStack)"
  fi
fi
functions_why="host mode: LocalStack runs Lambda functions in Docker containers, and no Docker engine is used"
lambda_base="event-reminders/lambda-python:3.13"
if [ "$mode" = compose ]; then
  if official_images; then
    lambda_base="public.ecr.aws/lambda/python:3.13"
    docker image inspect "$lambda_base" >/dev/null 2>&1 || timeout 120 docker pull -q "$lambda_base" >/dev/null 2>&1 \
      || lambda_base="event-reminders/lambda-python:3.13"
  else
    say "$image can't be pulled here: compose with stand-ins built from Debian's archive (compose.local-images.yml)"
    step "stand-in images (infra/docker/build-images.sh)" infra/docker/build-images.sh || exit 1
    compose_files+=(-f infra/docker/compose.local-images.yml)
  fi
fi

localstack_pid=""
compose=""
cleanup() {
  # Function containers LocalStack started on this project's network hold it; they are ours.
  local leftovers
  leftovers="$(docker ps -aq --filter "network=$project" --filter "name=-lambda-" 2>/dev/null)"
  [ -n "$leftovers" ] && docker rm -f $leftovers >/dev/null 2>&1
  if [ -n "$localstack_pid" ]; then
    kill "$localstack_pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$localstack_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$localstack_pid" 2>/dev/null
  fi
  if [ -n "$compose" ]; then
    $compose "${compose_files[@]}" -p "$project" down -v >"$LOCAL_DIR/compose-down.log" 2>&1 \
      || { echo "test-localstack: compose down failed:"; tail -5 "$LOCAL_DIR/compose-down.log"; }
  fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

# The function image: LocalStack's free edition mounts no Lambda layers, so the built layer goes where
# AWS mounts it (/opt) in an image of its own; LocalStack maps python3.13 to it.
build_functions() {
  local py313 sam
  py313="$(python313)" || { echo "Python 3.13 not found (sam build for python3.13 needs it)"; return 1; }
  sam="$(ensure_sam)" || { echo "could not install SAM CLI $SAM_CLI_VERSION"; return 1; }
  if [ "$lambda_base" = event-reminders/lambda-python:3.13 ]; then
    infra/docker/lambda-python/build.sh || return 1
  fi
  "$REPO/.venv-sam/bin/python" infra/docker/sam_local_template.py template.yaml .aws-sam/sam-local/template.yaml \
    && PATH="$(dirname "$py313"):$PATH" SAM_CLI_TELEMETRY=0 "$sam" build --cached --template-file .aws-sam/sam-local/template.yaml \
      --base-dir . --build-dir .aws-sam/sam-local/build --cache-dir .aws-sam/sam-local/cache >"$LOCAL_DIR/sam-build.log" 2>&1 \
    || { tail -30 "$LOCAL_DIR/sam-build.log"; return 1; }
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$lambda_base" -f infra/localstack/lambda-layers.Dockerfile \
    -t "$function_image" .aws-sam/sam-local/build/CommonLayer >"$LOCAL_DIR/function-image.log" 2>&1 \
    || { tail -10 "$LOCAL_DIR/function-image.log"; return 1; }
  cat >"$LOCAL_DIR/compose.function-image.yml" <<YAML
services:
  localstack:
    environment:
      LAMBDA_RUNTIME_IMAGE_MAPPING: '{"python3.13": "$function_image"}'
YAML
  compose_files+=(-f "$LOCAL_DIR/compose.function-image.yml")
}
function_image="event-reminders/lambda-python-layers:3.13"

start_compose() {
  compose="$(compose_cmd)" || { echo "no docker compose command"; return 1; }
  export POSTGRES_PORT="${POSTGRES_PORT:-$(port_or_free 55432)}" LOCALSTACK_PORT="$port"
  $compose "${compose_files[@]}" -p "$project" up -d localstack >"$LOCAL_DIR/compose-up.log" 2>&1 || { tail "$LOCAL_DIR/compose-up.log"; return 1; }
  wait_healthy "$project"_postgres_1 120 2>/dev/null || wait_healthy "$project-postgres-1" 120 || return 1
  wait_healthy "$project"_localstack_1 240 2>/dev/null || wait_healthy "$project-localstack-1" 240 || return 1
  export TEST_DATABASE_URL="postgresql://postgres:postgres@127.0.0.1:$POSTGRES_PORT/reminders"
  database="compose postgres (127.0.0.1:$POSTGRES_PORT, $(docker inspect -f '{{.Config.Image}}' "$(docker ps -qf name="${project}.postgres")"))"
}

ensure_localstack_venv() {
  local venv="$REPO/.venv-localstack" py
  if "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('localstack-core') == '$LOCALSTACK_VERSION'" 2>/dev/null; then
    return 0
  fi
  py="$(python313)" || { echo "Python 3.13 not found (LocalStack's host mode runs on 3.13 only)"; return 1; }
  rm -rf "$venv"
  "$py" -m venv "$venv" || return 1
  # The pins: newer releases of these break localstack-core 4.14.0 (DESIGN.md).
  # localstack-core alone: the runtime is started directly, without the `localstack` CLI.
  "$venv/bin/pip" install -q --disable-pip-version-check "localstack-core[runtime]==$LOCALSTACK_VERSION" \
    'cbor2<6' 'pyopenssl<26' 'cryptography<47' service-identity \
    >"$LOCAL_DIR/localstack-install.log" 2>&1 || { tail -5 "$LOCAL_DIR/localstack-install.log"; return 1; }
}

start_host() {
  ensure_localstack_venv || return 1
  local root="$REPO/.local/localstack"
  rm -rf "$root/fs" && mkdir -p "$root/fs/etc/localstack/init"
  ln -s "$REPO/infra/localstack/init/ready.d" "$root/fs/etc/localstack/init/ready.d"
  if [ -z "${TEST_DATABASE_URL:-}" ] && command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
    export TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres"
  fi
  database="${TEST_DATABASE_URL:+$(echo "$TEST_DATABASE_URL" | sed 's#//[^@]*@#//#')}"
  database="${database:-the embedded PostgreSQL the tests start}"
  # OVERRIDE_IN_DOCKER=0: this sandbox looks like a container to LocalStack, which would then look
  # for its init hooks in /etc/localstack instead of under FILESYSTEM_ROOT.
  (cd "$root" && exec env OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$root/fs" GATEWAY_LISTEN="127.0.0.1:$port" \
    SERVICES="$services" DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 LOCALSTACK_HOST="127.0.0.1:$port" \
    REMINDERS_INIT_ENDPOINT="$endpoint" REMINDERS_DB_HOST=127.0.0.1 \
    "$REPO/.venv-localstack/bin/python" -m localstack.runtime.main >"$root/localstack.log" 2>&1) &
  localstack_pid=$!
  local i
  for i in $(seq 120); do
    curl -fsS "$endpoint/_localstack/init/ready" 2>/dev/null | grep -q '"completed": true' && return 0
    kill -0 "$localstack_pid" 2>/dev/null || { tail -20 "$root/localstack.log"; return 1; }
    sleep 1
  done
  tail -20 "$root/localstack.log"
  return 1
}

verify_localstack() {
  curl -fsS "$endpoint/_localstack/health" | grep -q '"ses": "\(available\|running\)"' || { echo "SES is not available"; return 1; }
  curl -fsS "$endpoint/_localstack/init/ready" | grep -q '"state": "ERROR"' && { echo "an init hook failed"; return 1; }
  AWS_ENDPOINT_URL="$endpoint" "$REPO/.venv/bin/python" - <<'PY'
import boto3
ses = boto3.client("ses", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
sender = "reminders@example.com"
status = ses.get_identity_verification_attributes(Identities=[sender])["VerificationAttributes"][sender]
assert status["VerificationStatus"] == "Success", status
print(f"LocalStack: SES identity {sender} verified")
PY
}

if [ "$mode" = compose ]; then
  step "sam build and the function image ($function_image from $lambda_base)" build_functions || exit 1
  step "start LocalStack $LOCALSTACK_VERSION and postgres from docker-compose.yml" start_compose || exit 1
else
  step "start LocalStack $LOCALSTACK_VERSION in host mode on $endpoint" start_host || exit 1
fi
step "verify LocalStack (health, init hooks, sender identity)" verify_localstack || exit 1

# Left out: what LocalStack's free edition does not emulate (they run against moto in `make test`).
not_emulated=(tests/integration/test_smoke_user_pool.py)  # Cognito user pools
say "part 1: the tests/integration tests that talk to AWS, with AWS_ENDPOINT_URL=$endpoint (left out, no Cognito in LocalStack: ${not_emulated[*]})"
part1_started=$(date +%s)
AWS_ENDPOINT_URL="$endpoint" PYTHONPATH="$REPO/infra/ci${PYTHONPATH:+:$PYTHONPATH}" "$REPO/.venv/bin/python" -m pytest \
  -p pytest_aws_only -m "not e2e" tests/integration -p no:cacheprovider $(printf -- '--ignore=%s ' "${not_emulated[@]}")
rc=$?
part1="tests/integration's AWS tests $( [ $rc = 0 ] && echo passed || echo "FAILED (pytest exit $rc)") in $(( $(date +%s) - part1_started ))s (without ${not_emulated[*]}: Cognito)"

part2="not run"
functions="no ($functions_why)"
if [ "$mode" = compose ]; then
  deploy() { api="$(AWS_ENDPOINT_URL="$endpoint" infra/localstack/deploy.sh | tail -1)" && [ -n "$api" ]; }
  issuer_dir="${DEVSERVER_DATA_DIR:-$REPO/.local}/issuer"
  # The first request after a deploy starts the authorizer's and the API's containers: start them once
  # here (documents need no token; /events does), so the tests time requests, not cold starts.
  warm_up() {
    local token
    token="$(PYTHONPATH=infra/local .venv/bin/python -m devserver.issuer token --email warm-up@example.com \
      --state-dir "$issuer_dir" --issuer-url http://127.0.0.1:3000/_local/issuer)" || return 1
    curl -fsS -m 300 -o /dev/null "$api/openapi.json" \
      && curl -fsS -m 300 -o /dev/null -H "Authorization: Bearer $token" "$api/events"
  }
  if step "part 2: deploy the stack into LocalStack (infra/localstack/deploy.sh)" deploy \
      && step "part 2: first requests (start the authorizer's and the API's containers)" warm_up; then
    say "part 2: pytest tests/sam through LocalStack's API Gateway $api"
    part2_started=$(date +%s)
    CONTRACT_API_URL="$api" CONTRACT_ISSUER_DIR="$issuer_dir" CONTRACT_ISSUER_URL="http://127.0.0.1:3000/_local/issuer" \
      CONTRACT_RUNTIME="LocalStack $LOCALSTACK_VERSION" CONTRACT_GATEWAY_RESPONSES=status \
      CONTRACT_SES_OUTBOX_URL="$endpoint/_aws/ses" \
      "$REPO/.venv/bin/python" -m pytest tests/sam -p no:cacheprovider
    rc2=$?
    part2="tests/sam (contract, tenancy, reminder flow) $( [ $rc2 = 0 ] && echo passed || echo "FAILED (pytest exit $rc2)") in $(( $(date +%s) - part2_started ))s"
    [ $rc2 = 0 ] || rc=$rc2
  else
    part2="FAILED: the stack did not deploy, or did not answer its first requests (see above)"
    rc=1
  fi
  ran="$(docker ps -a --filter "network=$project" --format '{{.Names}}' | grep -c -- '-lambda-' || true)"
  if [ "${ran:-0}" -gt 0 ]; then
    functions="yes ($ran function containers started by LocalStack's Lambda, our init, $function_image)"
  else
    functions="no (LocalStack started no function container)"
  fi
fi
sent="$(curl -fsS "$endpoint/_aws/ses" 2>/dev/null | "$REPO/.venv/bin/python" -c 'import json,sys; print(len(json.load(sys.stdin)["messages"]))' 2>/dev/null || echo '?')"
echo "test-localstack: $( [ $rc = 0 ] && echo passed || echo "FAILED"): LocalStack $LOCALSTACK_VERSION ($mode mode${compose:+, ${compose_files[*]}}, $endpoint," \
  "$sent emails in /_aws/ses), database: $database, in $(( $(date +%s) - started ))s"
echo "test-localstack: part 1: $part1"
echo "test-localstack: part 2: $part2"
echo "test-localstack: functions ran inside LocalStack: $functions"
exit $rc
