#!/bin/sh
# deps.sh: install every Debian package capsa needs to build, test and
# benchmark.  Idempotent and non-interactive; safe to run on every CI start.
set -eu
PKGS="
build-essential meson ninja-build pkg-config musl-tools clang libclang-rt-14-dev
libsqlite3-dev libseccomp-dev libarchive-dev libcurl4-openssl-dev libjansson-dev
libzstd-dev zlib1g-dev libmicrohttpd-dev libssl-dev libnftables-dev
busybox-static debootstrap skopeo umoci docker-registry apache2-utils openssl
crun runc bubblewrap podman containerd uidmap qemu-system-x86 cpio
python3 python3-pytest python3-yaml tmux curl jq hyperfine e2fsprogs iproute2 util-linux
procps psmisc file xz-utils zstd gzip tar valgrind ca-certificates
dnsmasq-base nftables
"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# Node.js and npm drive the E2B SDK tests; a machine may already carry a
# newer Node.js than Debian's, which we keep.
if ! command -v npm >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
