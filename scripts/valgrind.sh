#!/bin/bash
# valgrind.sh [OUT.json]: the glibc command-line programs (capsa-core,
# capsa-full) under valgrind's memcheck for a whole sandbox life: image
# import, run -d, exec, cp in and out, files, logs, inspect, ps, stop, rm.
# Each step must report no leak ("definitely" or "indirectly" lost) and no
# memory error; the step's name and result go to OUT.json (one JSON line
# each, for scripts/summarize.py).  Children (the supervisor, the agent,
# the processes in the sandbox) are not traced: the supervisor and the
# agent are musl static binaries, where valgrind cannot replace malloc.
# Instead, the whole cycle runs with the supervisor's glibc build from the
# ASan/UBSan tree (build-asan/capsa-supervisor-glibc), whose reports go to
# files checked at the end ("supervisor-asan").  valgrind itself cannot run
# the supervisor: 3.19 (Debian 12) fails the execveat of the agent's sealed
# memfd.  See docs/security.md, "Sanitizers and valgrind".
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
BUILD=${CAPSA_BUILD:-$REPO/build}
OUT=${1:-/dev/null}
: >"$OUT"
command -v valgrind >/dev/null || { echo "valgrind not installed"; echo '{"name": "valgrind", "result": "FAIL"}' >>"$OUT"; exit 1; }

T=$(mktemp -d /tmp/capsa-valgrind-XXXXXX)
export CAPSA_ROOT=$T/root CAPSA_RUN_ROOT=$T/run CAPSA_CGROUP_PARENT=capsa-valgrind-$$
# loopback only: this checks memory, not networks (which change the host)
export CAPSA_DEFAULT_NETWORK=none
unset CAPSA_LIBEXEC_DIR
NAME=vg-$$
SUP=$REPO/build-asan/capsa-supervisor-glibc
if [ -x "$SUP" ]; then
	# the helpers capsa-core looks for, with the sanitized supervisor
	mkdir -p "$T/libexec"
	for f in capsa capsa-core capsa-full capsa-agent; do ln -s "$BUILD/$f" "$T/libexec/$f"; done
	printf '#!/bin/sh\nASAN_OPTIONS=log_path=%s UBSAN_OPTIONS=print_stacktrace=1:log_path=%s exec %s "$@"\n' \
		"$T/sup-asan" "$T/sup-ubsan" "$SUP" >"$T/libexec/capsa-supervisor"
	chmod +x "$T/libexec/capsa-supervisor"
	export CAPSA_LIBEXEC_DIR=$T/libexec
fi
cleanup() {
	"$BUILD/capsa" rm -f "$NAME" >/dev/null 2>&1
	umount -R -l "$T" 2>/dev/null
	rm -rf "$T"
	for h in /sys/fs/cgroup /sys/fs/cgroup/*; do rmdir "$h/$CAPSA_CGROUP_PARENT" 2>/dev/null; done
}
trap cleanup EXIT

rc=0
# vg STEP EXIT BINARY ARGS...: one command under memcheck, which must exit
# with EXIT and leave valgrind nothing to say; stdin from $VG_IN
vg() {
	local step=$1 want=$2 bin=$3
	shift 3
	local log=$T/vg-$step.log
	valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 --trace-children=no --child-silent-after-fork=yes --log-file="$log" \
		"$BUILD/$bin" "$@" <"${VG_IN:-/dev/null}" >"$T/out-$step" 2>&1
	local got=$?
	# "--pid--" lines are valgrind's notes (syscalls it does not model: seccomp,
	# openat2, which the code then falls back from); "==pid==" lines are errors
	if [ "$got" = "$want" ] && ! grep -q "^==[0-9]*==" "$log"; then
		res=OK
	else
		res=FAIL
		rc=1
		echo "--- $step: $bin $*: exit $got, expected $want"
		tail -40 "$T/out-$step"
		cat "$log"
	fi
	echo "valgrind $step ($bin): $res"
	echo "{\"name\": \"valgrind-$step\", \"result\": \"$res\"}" >>"$OUT"
}

vg import 0 capsa-full image import tests/images/out/busybox-oci.tar --name busybox:latest
vg run 0 capsa-core run -d --name "$NAME" busybox sleep 100000
vg exec 0 capsa-core exec "$NAME" sh -c 'echo hello; echo err >&2'
vg exec-fail 127 capsa-core exec "$NAME" /nonexistent
echo "data" >"$T/in"
vg cp-in 0 capsa-core cp "$T/in" "$NAME:/tmp/in"
vg cp-out 0 capsa-core cp "$NAME:/tmp" "$T/outdir"
VG_IN=$T/in vg files-write 0 capsa-core files write "$NAME" /tmp/w
vg files-ls 0 capsa-core files ls "$NAME" /tmp
vg logs 0 capsa-core logs "$NAME"
vg inspect 0 capsa-core inspect "$NAME"
vg ps 0 capsa-core ps -a
vg stop 0 capsa-core stop -t 1 "$NAME"
vg rm 0 capsa-core rm "$NAME"
vg run-rm 0 capsa-core run --rm busybox true
vg bad-input 125 capsa-core run --rm --memory 12q busybox true
if [ -n "${CAPSA_LIBEXEC_DIR:-}" ]; then
	sleep 1 # the last supervisor finishing
	if ls "$T"/sup-asan* "$T"/sup-ubsan* >/dev/null 2>&1; then
		res=FAIL
		rc=1
		cat "$T"/sup-asan* "$T"/sup-ubsan* 2>/dev/null | head -60
	else
		res=OK
	fi
	echo "supervisor under asan/ubsan: $res"
	echo "{\"name\": \"supervisor-asan\", \"result\": \"$res\"}" >>"$OUT"
fi
exit $rc
