#!/usr/bin/env bash
# Build every image this repo needs where no image registry is reachable (root, Docker running):
#   event-reminders/lambda-python:3.13   for `sam local ... --invoke-image`
#   event-reminders/postgres:17-debian   } used by docker-compose.yml together with
#   event-reminders/localstack:4.14.0    } infra/docker/compose.local-images.yml
# Each is skipped when present (REBUILD=1 rebuilds). Takes a few minutes per image the first time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/lambda-python/build.sh"
"$here/postgres/build.sh"
"$here/localstack/build.sh"
