#!/usr/bin/env bash
# Build event-reminders/localstack:4.14.0, for docker-compose.local-images.yml where
# localstack/localstack:4.14.0 can't be pulled: localstack-core 4.14.0 (with DESIGN.md's pins) from
# PyPI on Debian trixie's python3.13. Like host mode, it runs no Lambda code (LocalStack fetches its
# Lambda init binary from GitHub, which such machines don't reach).
#   infra/docker/localstack/build.sh        (root, Docker engine running; REBUILD=1 to rebuild)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib.sh"
image="${LOCALSTACK_IMAGE:-event-reminders/localstack:4.14.0}"
arch="$(wheel_arch localstack)"
if image_present "$image"; then echo "image $image: present" >&2; exit 0; fi
rootfs="$(debootstrap_rootfs localstack python3.13 ca-certificates curl)"
log="$BUILD_ROOT/localstack/pip.log" wheels="$BUILD_ROOT/localstack/wheels"
mkdir -p "$wheels"
echo "image $image: localstack-core 4.14.0 into /opt/localstack/site-packages (cp313, $arch)" >&2
# Three of its dependencies are published as source only: build them (pure Python) first.
python3 -m pip wheel -q --disable-pip-version-check --no-deps --no-binary :all: -w "$wheels" \
  airspeed-ext crontab jsonpath-rw >"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
rm -rf "$rootfs/opt/localstack"
python3 -m pip install --disable-pip-version-check --no-compile --target "$rootfs/opt/localstack/site-packages" \
  --only-binary=:all: --find-links "$wheels" --python-version 3.13 --implementation cp \
  --platform "manylinux2014_$arch" --platform "manylinux_2_28_$arch" --platform "manylinux_2_34_$arch" \
  'localstack-core[runtime]==4.14.0' 'cbor2<6' 'pyopenssl<26' 'cryptography<47' service-identity \
  >>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
mkdir -p "$rootfs/etc/localstack/init/ready.d" "$rootfs/var/lib/localstack"
build_image "$image" "$rootfs" "$here/Dockerfile"
