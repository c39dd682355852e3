#!/usr/bin/env bash
# Start docker-compose.yml's services and wait until each reports healthy: what
# `docker compose up -d --wait` does, for the compose v2 plugin and Debian's docker-compose v1 alike
# (v1 has no --wait). Uses infra/docker/compose.local-images.yml when the pinned images can't be had
# here but infra/docker/build-images.sh's stand-ins exist (LOCAL_IMAGES=1 forces it, =0 forbids it).
#   infra/docker/up.sh [SERVICE...]      (COMPOSE_PROJECT_NAME, COMPOSE_NETWORK, POSTGRES_PORT, ... as for compose;
#                                         LAMBDA_RUNTIME_IMAGE_MAPPING: the images LocalStack runs functions in)
# Stop with `docker compose down` or `docker-compose down` (add -v to drop the database volume).
set -euo pipefail
source "$(cd "$(dirname "$0")/../ci" && pwd)/lib.sh"
cd "$REPO"

compose="$(compose_cmd)" || { echo "up.sh: neither 'docker compose' nor 'docker-compose' is available" >&2; exit 1; }
files=(-f docker-compose.yml)
pinned_images_here() {
  local image
  for image in postgres:16 "localstack/localstack:$LOCALSTACK_VERSION"; do
    docker image inspect "$image" >/dev/null 2>&1 || timeout 120 docker pull -q "$image" >/dev/null 2>&1 || return 1
  done
}
case "${LOCAL_IMAGES:-auto}" in
  1) files+=(-f infra/docker/compose.local-images.yml) ;;
  0) ;;
  *)
    if ! pinned_images_here; then
      if docker image inspect event-reminders/postgres:17-debian >/dev/null 2>&1 \
          && docker image inspect "event-reminders/localstack:$LOCALSTACK_VERSION" >/dev/null 2>&1; then
        say "the pinned images can't be pulled here: using the stand-ins (infra/docker/compose.local-images.yml)"
        files+=(-f infra/docker/compose.local-images.yml)
      else
        echo "up.sh: postgres:16 or localstack/localstack:$LOCALSTACK_VERSION can't be pulled here;" \
          "build stand-ins first: infra/docker/build-images.sh" >&2
        exit 1
      fi
    fi
    ;;
esac

# LAMBDA_RUNTIME_IMAGE_MAPPING, when set, wins over the override file's (a file of its own, last).
if [ -n "${LAMBDA_RUNTIME_IMAGE_MAPPING:-}" ]; then
  mkdir -p "$REPO/.local"
  printf 'services:\n  localstack:\n    environment:\n      LAMBDA_RUNTIME_IMAGE_MAPPING: %s\n' \
    "$(printf '%s' "$LAMBDA_RUNTIME_IMAGE_MAPPING" | "$REPO/.venv/bin/python" -c 'import json,sys; print(json.dumps(sys.stdin.read()))' 2>/dev/null \
      || python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')" >"$REPO/.local/compose.lambda-images.yml"
  files+=(-f .local/compose.lambda-images.yml)
fi
say "$compose ${files[*]} up -d $*"
$compose "${files[@]}" up -d "$@"
for id in $($compose "${files[@]}" ps -q "$@"); do
  name="$(docker inspect -f '{{.Name}}' "$id")"
  wait_healthy "${name#/}" 300
  say "${name#/}: healthy"
done
say "network: ${COMPOSE_NETWORK:-event-reminders}; LocalStack init: $(curl -fsS "http://127.0.0.1:${LOCALSTACK_PORT:-4566}/_localstack/init/ready" 2>/dev/null | head -c 200 || echo 'not started')"
