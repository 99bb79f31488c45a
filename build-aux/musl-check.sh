#!/bin/sh
# musl-check.sh BUILD_DIR SOURCE_DIR FILE.c...: compiles the libc-only
# sources with musl-gcc and links them into a static program, so a call
# that exists only in glibc (or a missing kernel header) fails the build
# here rather than in the agent.  Exit 77 (meson's "skipped") without
# musl-gcc.
set -eu
build=$1
src=$2
shift 2
command -v musl-gcc >/dev/null 2>&1 || { echo "musl-gcc not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Debian's musl-gcc has no kernel headers: borrow the system's.
mkdir -p "$tmp/inc"
arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
ln -s /usr/include/linux "$tmp/inc/linux"
ln -s "/usr/include/$arch/asm" "$tmp/inc/asm"
ln -s /usr/include/asm-generic "$tmp/inc/asm-generic"
cat >"$tmp/main.c" <<'C'
int main(void) { return 0; }
C
objs=""
for f in "$@"; do
	o="$tmp/$(basename "$f" .c).o"
	musl-gcc -std=gnu11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-missing-field-initializers \
		-Werror=implicit-function-declaration -isystem "$tmp/inc" \
		-I"$build" -I"$src" -I"$src/include" -I"$src/lib" -c "$f" -o "$o"
	objs="$objs $o"
done
# Every object is linked (not archived), so every symbol must resolve.
# shellcheck disable=SC2086
musl-gcc -static -o "$tmp/check" "$tmp/main.c" $objs
"$tmp/check"
echo "musl: $# files compiled and linked statically"
