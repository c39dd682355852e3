#!/usr/bin/env bash
# `make test-localstack`: the integration tests (tests/integration, not e2e) against LocalStack 4.14.0.
#
# Where LocalStack comes from (LOCALSTACK_MODE=auto|compose|host, default auto):
#   compose  docker-compose.yml's localstack/localstack:4.14.0 and postgres, when a Docker engine runs
#            and the image is here or can be pulled;
#   host     otherwise: LocalStack's host mode (PyPI's localstack-core==4.14.0 on Python 3.13, in
#            .venv-localstack), and the database from TEST_DATABASE_URL, this machine's PostgreSQL
#            on 127.0.0.1:5432, or the embedded one the tests start.
# Prints what ran; exits non-zero when LocalStack could not be started or a test failed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

mode="${LOCALSTACK_MODE:-auto}"
port="${LOCALSTACK_PORT:-4566}"
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
standin_images() {
  docker image inspect event-reminders/localstack:4.14.0 >/dev/null 2>&1 \
    && docker image inspect event-reminders/postgres:17-debian >/dev/null 2>&1
}
compose_files=(-f docker-compose.yml)
if [ "$mode" = auto ]; then
  mode=host
  if docker info >/dev/null 2>&1; then
    if official_images; then
      mode=compose
    elif standin_images; then
      mode=compose
      compose_files+=(-f infra/docker/compose.local-images.yml)
      say "$image can't be pulled here: compose with the locally built stand-ins (compose.local-images.yml)"
    else
      say "Docker engine runs but $image can't be pulled here: using LocalStack's host mode" \
        "(LOCALSTACK_MODE=compose builds stand-in images instead)"
    fi
  else
    say "no Docker engine running: using LocalStack's host mode"
  fi
elif [ "$mode" = compose ] && ! official_images; then
  say "$image can't be pulled here: building stand-ins (infra/docker/build-images.sh)"
  infra/docker/build-images.sh || exit 1
  compose_files+=(-f infra/docker/compose.local-images.yml)
fi

localstack_pid=""
compose=""
cleanup() {
  if [ -n "$localstack_pid" ]; then
    kill "$localstack_pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$localstack_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$localstack_pid" 2>/dev/null
  fi
  if [ -n "$compose" ]; then
    $compose "${compose_files[@]}" -p "$project" down -v >/dev/null 2>&1
  fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

start_compose() {
  compose="$(compose_cmd)" || { echo "no docker compose command"; return 1; }
  export POSTGRES_PORT="${POSTGRES_PORT:-55432}" LOCALSTACK_PORT="$port"
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
  step "start LocalStack $LOCALSTACK_VERSION and postgres from docker-compose.yml" start_compose || exit 1
else
  step "start LocalStack $LOCALSTACK_VERSION in host mode on $endpoint" start_host || exit 1
fi
step "verify LocalStack (health, init hooks, sender identity)" verify_localstack || exit 1

say "pytest -m 'not e2e' tests/integration with AWS_ENDPOINT_URL=$endpoint"
AWS_ENDPOINT_URL="$endpoint" "$REPO/.venv/bin/python" -m pytest -m "not e2e" tests/integration -p no:cacheprovider
rc=$?
sent="$(curl -fsS "$endpoint/_aws/ses" 2>/dev/null | "$REPO/.venv/bin/python" -c 'import json,sys; print(len(json.load(sys.stdin)["messages"]))' 2>/dev/null || echo '?')"
echo "test-localstack: $( [ $rc = 0 ] && echo passed || echo "FAILED (pytest exit $rc)"): tests/integration against" \
  "LocalStack $LOCALSTACK_VERSION ($mode mode${compose:+, ${compose_files[*]}}, $endpoint, $sent emails in /_aws/ses), database: $database," \
  "in $(( $(date +%s) - started ))s"
exit $rc
