#!/usr/bin/env bash
# A Lambda-like python3.13 image for `sam local --invoke-image`, built with no image registry:
# Debian trixie's python3.13 (debootstrap) plus awslambdaric and boto3 in /var/runtime.
#   infra/docker/lambda-python/build.sh        (root, Docker engine running; REBUILD=1 to rebuild)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib.sh"
image="${LAMBDA_IMAGE:-event-reminders/lambda-python:3.13}"
wheel_platform="manylinux2014_$(wheel_arch lambda)"
if image_present "$image"; then echo "image $image: present" >&2; exit 0; fi

rootfs="$(debootstrap_rootfs lambda-python python3.13 ca-certificates)"
echo "image $image: awslambdaric + boto3 into /var/runtime ($wheel_platform, cp313)" >&2
rm -rf "$rootfs/var/runtime"
if ! python3 -m pip install --disable-pip-version-check --no-compile --target "$rootfs/var/runtime" \
    --only-binary=:all: --python-version 3.13 --implementation cp --platform "$wheel_platform" \
    awslambdaric boto3 >"$BUILD_ROOT/lambda-python/pip.log" 2>&1; then
  tail -20 "$BUILD_ROOT/lambda-python/pip.log" >&2; exit 1
fi
install -m 0755 "$here/bootstrap" "$rootfs/var/runtime/bootstrap"
install -m 0755 "$here/lambda-entrypoint.sh" "$rootfs/lambda-entrypoint.sh"
mkdir -p "$rootfs/var/task" "$rootfs/opt"
chmod 1777 "$rootfs/tmp"
build_image "$image" "$rootfs" "$here/Dockerfile"
