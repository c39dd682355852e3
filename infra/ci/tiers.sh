#!/usr/bin/env bash
# The Docker-backed test tiers, for CI (.ci/run) or by hand: decides whether each can run on this
# machine, runs it, and ends with one line per tier:
#   tier <name>: passed (Ns) | failed (exit N, Ns, log) | skipped (why)
# A skipped tier is never reported as passed. Exits 1 when a tier that ran failed, else 0.
# The localstack tier's line also says whether our functions ran inside LocalStack.
#   infra/ci/tiers.sh [localstack] [sam]        (default: both; TIERS="..." works too)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

tiers=("$@")
[ ${#tiers[@]} = 0 ] && read -r -a tiers <<<"${TIERS:-localstack sam}"
summary=() failed=0

run_tier() {
  local name="$1" script="$2" log="$LOCAL_DIR/tier-$1.log" began rc
  began=$(date +%s)
  say "tier $name: running $script (log: $log)"
  "$script" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local note
  note="$(sed -n 's/^test-localstack: \(functions ran inside LocalStack: .*\)$/; \1/p' "$log" | tail -1)"
  if [ "$rc" = 0 ]; then
    summary+=("tier $name: passed ($(( $(date +%s) - began ))s$note)")
  else
    summary+=("tier $name: failed (exit $rc, $(( $(date +%s) - began ))s, $log$note)")
    failed=1
  fi
}

skip() { summary+=("tier $1: skipped ($2)"); say "tier $1: skipped ($2)"; }

# What each tier needs, checked once.
docker_why=""
docker_ok=0
if why="$(ensure_docker)"; then docker_ok=1; else docker_why="$why"; fi
py313="$(python313)" || py313=""

for tier in "${tiers[@]}"; do
  case "$tier" in
    localstack)
      if [ -z "$py313" ]; then
        skip localstack "no Python 3.13 (LocalStack's host mode and sam build for the deployed stack need it)"
      elif [ $docker_ok = 1 ] && ! command -v debootstrap >/dev/null 2>&1 && ! apt_install debootstrap; then
        skip localstack "debootstrap (to build the LocalStack, Lambda and PostgreSQL images without a registry) does not install"
      else
        run_tier localstack infra/ci/test-localstack.sh
      fi
      ;;
    sam)
      if [ $docker_ok = 0 ]; then
        skip sam "no Docker engine: $docker_why"
      elif [ -z "$py313" ]; then
        skip sam "no Python 3.13 (sam build for the python3.13 runtime needs it)"
      elif ! command -v debootstrap >/dev/null 2>&1 && ! apt_install debootstrap; then
        skip sam "debootstrap (to build the Lambda and PostgreSQL images without a registry) does not install"
      else
        run_tier sam infra/ci/test-sam.sh
      fi
      ;;
    *) summary+=("tier $tier: failed (no such tier; known: localstack sam)"); failed=1 ;;
  esac
done

# Stop the engine if these scripts started it.
if [ -f "$LOCAL_DIR/dockerd.pid" ]; then
  pid="$(cat "$LOCAL_DIR/dockerd.pid")"
  [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = dockerd ] && kill "$pid"
  rm -f "$LOCAL_DIR/dockerd.pid"
fi
echo
printf '%s\n' "${summary[@]}"
exit $failed
