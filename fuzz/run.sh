#!/bin/bash
# run.sh --time SECONDS [TARGET...]: long fuzzing runs of every target (or
# the ones named: flags, tar, fuzz-oci-json, ...), one after another, the
# time shared evenly between them, each on all cores.
# run.sh TARGET SECONDS: the same for one target (the older form).
# Corpora grow in build-fuzz/corpus/<target>/ (new seeds worth keeping can
# be copied to fuzz/corpus/<target>/); crashes land in build-fuzz/crashes/.
# Exits non-zero when any target crashed.
set -eu
cd "$(dirname "$0")/.."
usage() {
	echo "usage: fuzz/run.sh --time SECONDS [TARGET...] | fuzz/run.sh TARGET SECONDS" >&2
	exit 2
}
all_targets() { sed -n "s/^  '\(fuzz-[a-z0-9-]*\)'.*/\1/p" fuzz/meson.build; }
if [ "${1:-}" = "--time" ]; then
	SECS=${2:-}
	shift 2 || usage
	TARGETS=("$@")
	[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(all_targets)
else
	[ $# -eq 2 ] || usage
	TARGETS=("$1")
	SECS=$2
fi
case "$SECS" in '' | *[!0-9]*) echo "fuzz/run.sh: invalid time '$SECS': expected whole seconds" >&2; exit 2 ;; esac
known=$(all_targets)
for i in "${!TARGETS[@]}"; do
	t=fuzz-${TARGETS[$i]#fuzz-}
	grep -qx "$t" <<<"$known" || { echo "fuzz/run.sh: unknown target '${TARGETS[$i]}' (see fuzz/meson.build)" >&2; exit 2; }
	TARGETS[$i]=$t
done
EACH=$((SECS / ${#TARGETS[@]}))
[ "$EACH" -ge 1 ] || EACH=1
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dwerror=false -Db_sanitize=address,undefined \
	-Db_lundef=false -Dc_args="-fsanitize=fuzzer-no-link -Wno-format-nonliteral"
ninja -C build-fuzz "${TARGETS[@]/#/fuzz/}"
B=$(pwd)/build-fuzz
S=$(pwd)/fuzz/corpus
mkdir -p "$B/crashes" "$B/logs"
rc=0
for t in "${TARGETS[@]}"; do
	mkdir -p "$B/corpus/${t#fuzz-}"
	echo "=== $t for ${EACH}s (job logs in build-fuzz/logs/)"
	# the jobs write fuzz-N.log into the current directory
	(cd "$B/logs" && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$B/../fuzz/lsan.supp" "$B/fuzz/$t" -max_total_time="$EACH" -timeout=10 \
		-rss_limit_mb=2048 -max_len=1048576 -jobs="$(nproc)" -workers="$(nproc)" \
		-artifact_prefix="$B/crashes/$t-" "$B/corpus/${t#fuzz-}" "$S/${t#fuzz-}") || rc=1
done
exit $rc
