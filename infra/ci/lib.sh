# Helpers shared by the Docker-backed test tiers (test-sam.sh, test-localstack.sh, tiers.sh).

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="$REPO/.local/ci"
SAM_CLI_VERSION="${SAM_CLI_VERSION:-1.170.0}"
LOCALSTACK_VERSION="4.14.0"
mkdir -p "$LOCAL_DIR"

say() { echo "[$(date -u +%H:%M:%S)] $*"; }

# A step with its duration: step NAME COMMAND...
step() {
  local name="$1"; shift
  local started; started=$(date +%s)
  say "$name ..."
  "$@"
  local rc=$?
  say "$name: $( [ $rc = 0 ] && echo done || echo "FAILED (exit $rc)") in $(( $(date +%s) - started ))s"
  return $rc
}

# Python 3.13 (what LocalStack's host mode and `sam build` for python3.13 need): its path, or nothing.
python313() {
  local candidate
  for candidate in "$(command -v python3.13 2>/dev/null)" \
      "$(PYENV_VERSION=3.13 pyenv which python3.13 2>/dev/null)" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*/bin/python3.13 2>/dev/null | sort -V -r); do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

apt_install() {
  [ "$(id -u)" = 0 ] || { echo "needs root to apt-get install $*" >&2; return 1; }
  if [ ! -f "$LOCAL_DIR/apt-updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOCAL_DIR/apt.log" 2>&1 || return 1
    touch "$LOCAL_DIR/apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$LOCAL_DIR/apt.log" 2>&1
}

# A running Docker engine: install Debian's docker.io and start dockerd when there is none.
# Prints why not and returns 1 when it can't. Leaves dockerd's pid in $LOCAL_DIR/dockerd.pid.
ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io || { echo "no Docker engine and docker.io does not install (see $LOCAL_DIR/apt.log)"; return 1; }
  fi
  [ "$(id -u)" = 0 ] || { echo "no Docker engine running, and starting dockerd needs root"; return 1; }
  dockerd >"$LOCAL_DIR/dockerd.log" 2>&1 </dev/null &
  echo $! >"$LOCAL_DIR/dockerd.pid"
  local i
  for i in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "dockerd did not start: $(tail -3 "$LOCAL_DIR/dockerd.log" | tr '\n' ' ')"
  return 1
}

# The compose command: the plugin (`docker compose`) or the standalone v1 (Debian's docker-compose).
compose_cmd() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"; return 0; fi
  if ! command -v docker-compose >/dev/null 2>&1; then apt_install docker-compose >/dev/null 2>&1 || true; fi
  command -v docker-compose >/dev/null 2>&1 && { echo "docker-compose"; return 0; }
  return 1
}

# Wait until a compose service's container reports healthy: wait_healthy CONTAINER SECONDS
wait_healthy() {
  local container="$1" seconds="$2" i status
  for i in $(seq "$seconds"); do
    status="$(docker inspect -f '{{.State.Health.Status}}' "$container" 2>/dev/null || echo missing)"
    [ "$status" = healthy ] && return 0
    sleep 1
  done
  echo "$container is $status after ${seconds}s" >&2
  docker logs --tail 20 "$container" >&2 2>&1 || true
  return 1
}

# port_or_free PREFERRED: PREFERRED when nothing on 127.0.0.1 holds it, else a port the kernel hands
# out as free. The tiers publish ports on the host (CI and other sessions may hold 3000, 4566, ...).
port_or_free() {
  python3 - "$1" <<'PY'
import socket, sys
def bind(port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]
try:
    print(bind(int(sys.argv[1])))
except OSError:
    print(bind(0))
PY
}

# wait_http URL SECONDS: until the URL answers 2xx.
wait_http() {
  local url="$1" seconds="$2" i
  for i in $(seq "$seconds"); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 1
  done
  return 1
}

# SAM CLI in its own virtualenv (.venv-sam); prints the sam path.
ensure_sam() {
  local venv="$REPO/.venv-sam"
  if ! "$venv/bin/sam" --version 2>/dev/null | grep -q "$SAM_CLI_VERSION"; then
    python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q --disable-pip-version-check \
      "aws-sam-cli==$SAM_CLI_VERSION" >"$LOCAL_DIR/sam-install.log" 2>&1 \
      || { tail -5 "$LOCAL_DIR/sam-install.log" >&2; return 1; }
  fi
  echo "$venv/bin/sam"
}
