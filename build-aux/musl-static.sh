#!/bin/sh
# musl-static.sh [--strip] OUT DEPFILE CFLAGS... -- SOURCES...
#
# Builds a fully static executable with musl-gcc (Debian's musl-tools) from
# the libc-only sources: the agent and the supervisor.  Debian's musl-gcc
# does not see the kernel headers, so a private include directory links to
# them.  Without musl-gcc, falls back to a static glibc build.
set -eu
strip=""
if [ "$1" = "--strip" ]; then
	strip=-s
	shift
fi
out=$1
dep=$2
shift 2
cflags=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
	cflags="$cflags $1"
	shift
done
shift
objdir="$out.p"
mkdir -p "$objdir/kheaders"
ln -sfn /usr/include/linux "$objdir/kheaders/linux"
ln -sfn /usr/include/asm-generic "$objdir/kheaders/asm-generic"
ln -sfn "/usr/include/$(gcc -dumpmachine)/asm" "$objdir/kheaders/asm"
cc=${MUSL_CC:-musl-gcc}
kh="-isystem $objdir/kheaders"
if ! command -v "$cc" >/dev/null 2>&1; then
	cc=cc
	kh=""
fi
objs=""
deps=""
for src in "$@"; do
	o="$objdir/$(echo "$src" | tr '/.' '__').o"
	# shellcheck disable=SC2086
	$cc $cflags $kh -c "$src" -o "$o" -MD -MF "$o.d"
	objs="$objs $o"
	deps="$deps $o.d"
done
# shellcheck disable=SC2086
$cc -static $strip $cflags -o "$out" $objs
# one make rule: OUT: every header any object depended on
# shellcheck disable=SC2086
{ printf '%s:' "$out"; cat $deps | sed -e 's/^[^:]*://' -e 's/\\$//' | tr -s ' \n' '  '; echo; } > "$dep"
