#!/bin/bash
# demo.sh: on a fresh Debian 12 machine, as root: install the packages capsa
# needs, build it, build the busybox test image from Debian's busybox-static,
# import it into the store and run a sandbox from it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
tests/images/build.sh --busybox-only
capsa=build/capsa
$capsa image import tests/images/out/busybox-oci.tar --name busybox:latest
$capsa images
echo "+ capsa run --rm --memory 64m --pids-limit 64 busybox -- sh -c '...'"
$capsa run --rm --memory 64m --pids-limit 64 busybox -- sh -c \
	'echo "hello from sandbox $(hostname): I am $(id -un), PID 1 is $(cat /proc/1/comm)";
	 grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status;
	 echo "processes I can see: $(ls /proc | grep -c "^[0-9]")"'
