#!/usr/bin/env bash
# Build the Molecule platform image locally: a Debian 13 minbase that can run
# its own dockerd (Docker-in-Docker without --privileged). Nothing is pulled.
#   molecule/resources/build-platform-image.sh [IMAGE] [MIRROR]
set -euo pipefail
image="${1:-ray-compose/molecule-debian:trixie}"
mirror="${2:-http://deb.debian.org/debian}"
here="$(cd "$(dirname "$0")" && pwd)"
# Rebuild only when this script or the init script changed.
fingerprint="$(cat "$0" "$here/molecule-init" | sha256sum | cut -c1-16)"
if [ "$(docker image inspect --format '{{ index .Config.Labels "org.ray-compose.inputs" }}' "$image" 2>/dev/null)" = "$fingerprint" ]; then
  echo "platform image $image is up to date"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap debian-archive-keyring; }
rootfs="$(mktemp -d /var/tmp/molecule-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "bootstrapping Debian trixie into $rootfs (about a minute)"
debootstrap --variant=minbase --include=python3,iproute2,ca-certificates,tini trixie "$rootfs" "$mirror" >/dev/null
install -m 0755 "$here/molecule-init" "$rootfs/usr/local/sbin/molecule-init"
tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/usr/local/sbin/molecule-init"]' \
  --change "LABEL org.ray-compose.inputs=$fingerprint" - "$image" >/dev/null
echo "built platform image $image"
