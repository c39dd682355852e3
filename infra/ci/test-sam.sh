#!/usr/bin/env bash
# `make test-sam`: sam build, then `sam local start-api`, then the contract routes over HTTP (tests/sam).
#
#   - PostgreSQL from docker-compose.yml (postgres:16; where it can't be pulled, the image that
#     infra/docker/postgres/build.sh builds from Debian, via infra/docker/compose.local-images.yml);
#   - Lambda containers from the image that infra/docker/lambda-python/build.sh builds (no registry
#     needed), passed with --invoke-image, on the project's own compose network (event-reminders-sam),
#     so DATABASE_URL names `postgres` and no other compose project's `postgres` can answer;
#   - the token authorizer trusts make run's local issuer: the same key (.local/issuer) and, on port
#     3000, the same issuer URL (http://127.0.0.1:3000/_local/issuer), so `make token` tokens
#     work against either and survive restarts; its JWKS is served to the containers here;
#   - host ports: the API on 3000 and compose postgres on 55433 when free, else ports the kernel hands
#     out (SAM_API_PORT / SAM_POSTGRES_PORT fix them); CI's machine may hold 3000 (make run);
#   - migrations applied by invoking MigrateFunction through `sam local invoke`.
# Needs root (or a usable Docker engine) and Python 3.13 (what `sam build` runs for python3.13).
#   infra/ci/test-sam.sh            run tests/sam, print latency, stop everything
#   infra/ci/test-sam.sh --serve    the same set-up, then keep the API up (Ctrl-C stops); tokens:
#                                   make token EMAIL=you@example.com   (SAM_API_PORT=N: LOCAL_ISSUER_URL too, as printed)
set -uo pipefail
serve=0
[ "${1:-}" = --serve ] && serve=1
source "$(dirname "$0")/lib.sh"
cd "$REPO"

project="event-reminders-sam"
network="event-reminders-sam"
lambda_image="${LAMBDA_IMAGE:-event-reminders/lambda-python:3.13}"
api_port="${SAM_API_PORT:-$(port_or_free 3000)}"
api="http://127.0.0.1:$api_port"
work="$REPO/.local/sam"
# make run's issuer: its key, and its URL when SAM serves on make run's port.
issuer_dir="${DEVSERVER_DATA_DIR:-$REPO/.local}/issuer"
issuer="http://127.0.0.1:$api_port/_local/issuer"
export SAM_CLI_TELEMETRY=0 POSTGRES_PORT="${SAM_POSTGRES_PORT:-$(port_or_free 55433)}" COMPOSE_NETWORK="$network"
started=$(date +%s)
mkdir -p "$work"

sam_pid="" jwks_pid="" compose=""
cleanup() {
  # SIGTERM (a background job ignores SIGINT): SAM removes its warm containers on the way out.
  local signal
  for signal in TERM KILL; do
    [ -n "$sam_pid" ] && kill -0 "$sam_pid" 2>/dev/null || break
    kill -"$signal" "$sam_pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$sam_pid" 2>/dev/null || break; sleep 0.5; done
  done
  [ -n "$jwks_pid" ] && kill "$jwks_pid" 2>/dev/null
  # Function containers SAM left behind (killed before it could remove them) hold the network.
  local leftovers
  leftovers="$(docker ps -aq --filter "network=$network" --filter "label=sam.cli.container.type" 2>/dev/null)"
  [ -n "$leftovers" ] && docker rm -f $leftovers >/dev/null 2>&1
  if [ -n "$compose" ]; then
    $compose "${compose_files[@]}" -p "$project" down -v >"$work/compose-down.log" 2>&1 \
      || { echo "test-sam: compose down failed:"; tail -5 "$work/compose-down.log"; }
  fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

if curl -s -o /dev/null "$api" 2>/dev/null; then
  echo "test-sam: something already listens on $api; stop it or set SAM_API_PORT" >&2; exit 2
fi
why="$(ensure_docker)" || { echo "test-sam: no Docker engine: $why" >&2; exit 1; }
py313="$(python313)" || { echo "test-sam: Python 3.13 not found (sam build for python3.13 needs it)" >&2; exit 1; }
export PATH="$(dirname "$py313"):$PATH"
sam="$(ensure_sam)" || { echo "test-sam: could not install SAM CLI $SAM_CLI_VERSION" >&2; exit 1; }
say "SAM CLI: $("$sam" --version); Python 3.13: $py313; Docker engine: $(docker version -f '{{.Server.Version}}')"

compose_files=(-f docker-compose.yml)
images() {
  infra/docker/lambda-python/build.sh || return 1
  if docker image inspect postgres:16 >/dev/null 2>&1 || timeout 60 docker pull -q postgres:16 >/dev/null 2>&1; then
    say "postgres: the compose file's postgres:16"
  else
    say "postgres:16 can't be pulled here: Debian's PostgreSQL 17 image stands in (compose.local-images.yml)"
    infra/docker/postgres/build.sh || return 1
    compose_files+=(-f infra/docker/compose.local-images.yml)
  fi
}
step "images (Lambda-like python3.13, PostgreSQL)" images || exit 1

start_postgres() {
  compose="$(compose_cmd)" || { echo "no docker compose command"; return 1; }
  $compose "${compose_files[@]}" -p "$project" up -d postgres >"$work/compose-up.log" 2>&1 \
    || { tail "$work/compose-up.log"; return 1; }
  wait_healthy "${project}_postgres_1" 120 2>/dev/null || wait_healthy "${project}-postgres-1" 120
}
step "compose up postgres (network $network)" start_postgres || exit 1

# The token authorizer fetches the issuer's JWKS from inside its container: serve it on the
# network's gateway address, which the containers reach. The issuer URL (the tokens' iss) is stable.
start_issuer() {
  local gateway port jwks_url
  gateway="$(docker network inspect "$network" -f '{{(index .IPAM.Config 0).Gateway}}')" || return 1
  port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  jwks_url="http://$gateway:$port/.well-known/jwks.json"
  rm -rf "$work/issuer-www" && mkdir -p "$work/issuer-www/.well-known"
  PYTHONPATH=infra/local .venv/bin/python - "$issuer_dir" "$issuer" "$work/issuer-www/.well-known/jwks.json" <<'PY' || return 1
import json, sys
from pathlib import Path
from devserver.issuer import LocalIssuer
issuer = LocalIssuer(Path(sys.argv[1]), sys.argv[2])
Path(sys.argv[3]).write_text(json.dumps(issuer.jwks()))
PY
  .venv/bin/python -m http.server "$port" --bind "$gateway" --directory "$work/issuer-www" >"$work/jwks.log" 2>&1 &
  jwks_pid=$!
  cat >"$work/env.json" <<JSON
{"Parameters": {
  "DATABASE_URL": "postgresql://postgres:postgres@postgres:5432/reminders",
  "JWT_ISSUER": "$issuer", "JWT_AUDIENCE": "event-reminders", "JWKS_URL": "$jwks_url"
}}
JSON
  wait_http "$jwks_url" 20
}
step "local token issuer $issuer (key $issuer_dir, JWKS for the authorizer)" start_issuer || exit 1

build() {
  # Its own folders: .aws-sam/build stays what a plain `sam build` made for deploying.
  "$REPO/.venv-sam/bin/python" infra/docker/sam_local_template.py template.yaml .aws-sam/sam-local/template.yaml \
    && "$sam" build --cached --template-file .aws-sam/sam-local/template.yaml --base-dir . \
      --build-dir .aws-sam/sam-local/build --cache-dir .aws-sam/sam-local/cache >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log"; return 1; }
}
step "sam build" build || exit 1

local_args=(--template .aws-sam/sam-local/build/template.yaml --env-vars "$work/env.json" --docker-network "$network" --invoke-image "$lambda_image" --skip-pull-image
  --parameter-overrides "JwtIssuer=$issuer")
migrate() {
  echo '{}' >"$work/empty-event.json"
  "$sam" local invoke MigrateFunction "${local_args[@]}" --event "$work/empty-event.json" >"$work/migrate.log" 2>&1
  grep -q '"status": "ok"' "$work/migrate.log" || { tail -20 "$work/migrate.log"; return 1; }
}
step "sam local invoke MigrateFunction" migrate || exit 1

start_api() {
  "$sam" local start-api "${local_args[@]}" --warm-containers EAGER --host 127.0.0.1 --port "$api_port" \
    >"$work/start-api.log" 2>&1 &
  sam_pid=$!
  for _ in $(seq 180); do
    curl -fsS -o /dev/null "$api/openapi.json" 2>/dev/null && return 0
    kill -0 "$sam_pid" 2>/dev/null || break
    sleep 1
  done
  tail -30 "$work/start-api.log"
  return 1
}
step "sam local start-api on $api" start_api || exit 1

token_cmd="make token EMAIL=you@example.com"
[ "$issuer" = "http://127.0.0.1:3000/_local/issuer" ] || token_cmd="LOCAL_ISSUER_URL=$issuer $token_cmd"
[ "$issuer_dir" = "$REPO/.local/issuer" ] || token_cmd="LOCAL_ISSUER_DIR=$issuer_dir $token_cmd"
if [ $serve = 1 ]; then
  echo "API (through sam local start-api): $api   compose postgres: 127.0.0.1:$POSTGRES_PORT/reminders (network $network)"
  echo "token: export TOKEN=\$($token_cmd)"
  echo "try:   curl -H \"Authorization: Bearer \$TOKEN\" $api/events"
  wait "$sam_pid"
  exit 0
fi

say "pytest tests/sam against $api"
CONTRACT_API_URL="$api" CONTRACT_ISSUER_DIR="$issuer_dir" CONTRACT_ISSUER_URL="$issuer" \
  CONTRACT_RUNTIME="sam local start-api" CONTRACT_GATEWAY_RESPONSES=none \
  .venv/bin/python -m pytest tests/sam -p no:cacheprovider
rc=$?
if [ $rc = 0 ] && [ "${SAM_LATENCY:-1}" = 1 ]; then
  token="$(PYTHONPATH=infra/local .venv/bin/python -m devserver.issuer token --email latency@example.com \
    --state-dir "$issuer_dir" --issuer-url "$issuer")"
  .venv/bin/python bench/sam_latency.py --url "$api" --token "$token" -n "${SAM_LATENCY_N:-50}" --label "sam local start-api"
fi
echo "test-sam: $( [ $rc = 0 ] && echo passed || echo "FAILED (pytest exit $rc)"): tests/sam over HTTP through" \
  "sam local start-api ($lambda_image, compose postgres on network $network) in $(( $(date +%s) - started ))s"
exit $rc
