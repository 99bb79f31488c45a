#!/bin/bash
# smoke.sh OUT.json: build the libFuzzer targets in build-fuzz/ (clang,
# ASan+UBSan) and run each for FUZZ_SECONDS (default 20) from its seed
# corpus in fuzz/corpus/<target>/.  Writes one JSON line per target,
# {"name": "fuzz-<target>", "result": "OK"|"FAIL"}, for scripts/summarize.py;
# crashes are kept in build-fuzz/crashes/.
set -u
cd "$(dirname "$0")/.."
OUT=${1:?usage: fuzz/smoke.sh OUT.json}
SECS=${FUZZ_SECONDS:-20}
: >"$OUT"
fail_all() {
	for t in $(sed -n "s/^  '\(fuzz-[a-z0-9-]*\)'.*/\1/p" fuzz/meson.build); do
		echo "{\"name\": \"$t\", \"result\": \"FAIL\"}" >>"$OUT"
	done
	exit 1
}
if [ ! -d build-fuzz ]; then
	CC=clang meson setup build-fuzz -Dfuzz=true -Dwerror=false -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args="-fsanitize=fuzzer-no-link -Wno-format-nonliteral" >"${TMPDIR:-/tmp}/capsa-fuzz-build.log" 2>&1 ||
		{ tail -20 "${TMPDIR:-/tmp}/capsa-fuzz-build.log"; fail_all; }
fi
ninja -C build-fuzz $(sed -n "s/^  '\(fuzz-[a-z0-9-]*\)'.*/fuzz\/\1/p" fuzz/meson.build) >"${TMPDIR:-/tmp}/capsa-fuzz-build.log" 2>&1 ||
	{ tail -20 "${TMPDIR:-/tmp}/capsa-fuzz-build.log"; fail_all; }
mkdir -p build-fuzz/crashes
rc=0
for t in $(sed -n "s/^  '\(fuzz-[a-z0-9-]*\)'.*/\1/p" fuzz/meson.build); do
	seeds=fuzz/corpus/${t#fuzz-}
	work=build-fuzz/corpus/${t#fuzz-}
	mkdir -p "$work"
	if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$PWD/fuzz/lsan.supp UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"build-fuzz/fuzz/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 \
		-artifact_prefix=build-fuzz/crashes/"$t"- "$work" "$seeds" >"build-fuzz/$t.log" 2>&1; then
		res=OK
	else
		res=FAIL
		rc=1
		tail -30 "build-fuzz/$t.log"
	fi
	echo "$t: $res ($(grep -o 'Done [0-9]* runs' "build-fuzz/$t.log" | awk '{print $2}') runs)"
	echo "{\"name\": \"$t\", \"result\": \"$res\"}" >>"$OUT"
done
exit $rc
