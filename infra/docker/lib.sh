# Shared by the image build scripts: no image registry is needed, only Debian's mirror.
# debootstrap is run as root; each rootfs is cached under $BUILD_ROOT and reused.

BUILD_ROOT="${BUILD_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.local/docker}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Debian 13 ships python3.13, the template's Lambda runtime.
DEBIAN_SUITE="${DEBIAN_SUITE:-trixie}"

# wheel_arch IMAGE -> the machine's architecture as manylinux wheel tags name it; exits on others.
wheel_arch() {
  case "$(uname -m)" in
    x86_64 | aarch64) uname -m ;;
    *) echo "$1 image: unsupported machine $(uname -m)" >&2; exit 2 ;;
  esac
}

# debootstrap_rootfs NAME PACKAGES... -> prints the rootfs path; skips the work if it is cached.
debootstrap_rootfs() {
  local name="$1"; shift
  local rootfs="$BUILD_ROOT/$name/rootfs" stamp="$BUILD_ROOT/$name/rootfs.done"
  local wanted="$DEBIAN_SUITE $*"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then echo "$rootfs"; return 0; fi
  command -v debootstrap >/dev/null || { echo "needs debootstrap (apt-get install -y debootstrap)" >&2; return 2; }
  rm -rf "$rootfs" "$stamp" && mkdir -p "$rootfs"
  local packages; packages="$(IFS=,; echo "$*")"
  echo "image $name: debootstrap $DEBIAN_SUITE with $packages" >&2
  if ! debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" \
      >"$BUILD_ROOT/$name/debootstrap.log" 2>&1; then
    tail -20 "$BUILD_ROOT/$name/debootstrap.log" >&2; return 1
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc \
    "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
  echo "$wanted" >"$stamp"
  echo "$rootfs"
}

# build_image TAG ROOTFS DOCKERFILE: the rootfs becomes the image's only layer (FROM scratch).
build_image() {
  local tag="$1" rootfs="$2" dockerfile="$3"
  local context; context="$(mktemp -d "$BUILD_ROOT/context.XXXXXX")"
  tar -C "$rootfs" --numeric-owner -cf "$context/rootfs.tar" .
  cp "$dockerfile" "$context/Dockerfile"
  if ! DOCKER_BUILDKIT=0 docker build -t "$tag" "$context" >"$context/build.log" 2>&1; then
    tail -20 "$context/build.log" >&2; rm -rf "$context"; return 1
  fi
  rm -rf "$context"
  echo "image $tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}')" >&2
}

# image_present TAG: already built (or pulled), unless REBUILD=1.
image_present() {
  [ "${REBUILD:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1
}
