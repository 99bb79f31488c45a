#!/bin/sh
# build.sh: build the test images into tests/images/out/:
#   busybox-oci.tar  busybox userland from Debian's busybox-static
#   debian-oci.tar   debootstrap --variant=minbase bookworm with bash, python3,
#                    procps and ca-certificates (rootfs cached in
#                    tests/images/cache/, keyed by suite, mirror and packages)
# Output is deterministic for the same inputs; up-to-date images are kept.
#   --busybox-only   skip the Debian image
set -eu
cd "$(dirname "$0")"
exec python3 build_images.py "$@"
