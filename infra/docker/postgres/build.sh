#!/usr/bin/env bash
# Build a PostgreSQL image with no image registry, for docker-compose.local-images.yml:
# Debian trixie's postgresql-17 (debootstrap). Production runs Aurora PostgreSQL 16; Debian's
# archive has no 16 (bookworm 15, trixie 17), and the product uses nothing that differs between them.
#   infra/docker/postgres/build.sh        (root, Docker engine running; REBUILD=1 to rebuild)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib.sh"
image="${POSTGRES_IMAGE:-event-reminders/postgres:17-debian}"
if image_present "$image"; then echo "image $image: present" >&2; exit 0; fi
rootfs="$(debootstrap_rootfs postgres postgresql-17 util-linux)"
# The package's post-install step made a cluster of its own; the entrypoint makes ours in PGDATA.
rm -rf "$rootfs/var/lib/postgresql/17" "$rootfs/etc/postgresql/17"
install -D -m 0755 "$here/docker-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
build_image "$image" "$rootfs" "$here/Dockerfile"
