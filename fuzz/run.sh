#!/bin/bash
# run.sh TARGET SECONDS: a long fuzzing run of one target (fuzz-tar,
# fuzz-oci-json, ...) on all cores, growing build-fuzz/corpus/<target>/;
# new seeds worth keeping can be copied to fuzz/corpus/<target>/.
set -eu
cd "$(dirname "$0")/.."
T=${1:?usage: fuzz/run.sh TARGET SECONDS}
SECS=${2:?usage: fuzz/run.sh TARGET SECONDS}
T=fuzz-${T#fuzz-}
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true -Dwerror=false -Db_sanitize=address,undefined \
	-Db_lundef=false -Dc_args="-fsanitize=fuzzer-no-link -Wno-format-nonliteral"
ninja -C build-fuzz "fuzz/$T"
mkdir -p "build-fuzz/corpus/${T#fuzz-}" build-fuzz/crashes
exec "build-fuzz/fuzz/$T" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 \
	-jobs="$(nproc)" -workers="$(nproc)" -artifact_prefix=build-fuzz/crashes/"$T"- \
	"build-fuzz/corpus/${T#fuzz-}" "fuzz/corpus/${T#fuzz-}"
