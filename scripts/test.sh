#!/bin/bash
# test.sh: set everything up on a fresh Debian 12 machine (as root) and run
# every test: C unit tests in the optimized and the ASan/UBSan builds, the
# end-to-end tests against the real binaries, and the fuzz smoke runs.
# The last line is "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
LOGS=$REPO/build-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
step "build (optimized and asan/ubsan)"
if ! scripts/build.sh --asan; then
	ninja -C build 2>&1 | tail -40
	ninja -C build-asan 2>&1 | tail -40
	echo "0 passed, 1 failed"
	exit 1
fi
step "test images"
tests/images/build.sh || { echo "0 passed, 1 failed"; exit 1; }

step "unit tests (optimized)"
meson test -C build --suite unit --print-errorlogs --logbase unit | tail -n 12
cp build/meson-logs/unit.json "$LOGS/unit.json" 2>/dev/null
step "unit tests (asan/ubsan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --suite unit --print-errorlogs --logbase unit-asan | tail -n 12
cp build-asan/meson-logs/unit-asan.json "$LOGS/unit-asan.json" 2>/dev/null

step "end-to-end tests (optimized build)"
CAPSA_BUILD=$REPO/build /usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$LOGS/e2e.xml" \
	tests/e2e ${E2E_ARGS:-} 2>&1 | tail -n 40
step "end-to-end tests (asan/ubsan build)"
CAPSA_BUILD=$REPO/build-asan ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	/usr/bin/python3 -m pytest -q -p no:cacheprovider -m "not slow" --junitxml="$LOGS/e2e-asan.xml" \
	tests/e2e ${E2E_ARGS:-} 2>&1 | tail -n 40

step "escape battery (optimized build)"
CAPSA_BUILD=$REPO/build /usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$LOGS/security.xml" \
	tests/security 2>&1 | tail -n 40
step "escape battery (asan/ubsan build)"
CAPSA_BUILD=$REPO/build-asan ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	/usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$LOGS/security-asan.xml" \
	tests/security 2>&1 | tail -n 40
step "escape battery, rootless (optimized build)"
CAPSA_BATTERY_ROOTLESS=1 CAPSA_BUILD=$REPO/build /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	--junitxml="$LOGS/security-rootless.xml" tests/security 2>&1 | tail -n 40

step "valgrind (capsa-core and capsa-full for a sandbox's life)"
scripts/valgrind.sh "$LOGS/valgrind.json" 2>&1 | tail -n 25

if [ -x fuzz/smoke.sh ]; then
	step "fuzz smoke"
	fuzz/smoke.sh "$LOGS/fuzz.json" 2>&1 | tail -n 20
fi

step "summary"
/usr/bin/python3 scripts/summarize.py "$LOGS"
