#!/bin/bash
# vm-test.sh BUILD_DIR TEST...: runs unit test binaries inside a QEMU/KVM
# guest booted from Debian 12's stock kernel (linux-image-amd64, 6.1) with
# a pure cgroup v2 hierarchy, to check the code paths this host (kernel
# 6.18, cgroup v1) cannot reach.  The guest's root is a tmpfs built from an
# initramfs holding busybox, the tests and the shared libraries they need.
# Prints each test's TAP output and exits non-zero when one fails.
#
# Needs: qemu-system-x86, busybox-static, cpio, and the linux-image .deb
# (fetched with apt-get download into $CACHE).  Exit 77 (skipped) without
# qemu.  Runs under TCG by default: on the development VM (itself a KVM
# guest) a nested KVM guest hangs right after the kernel is decompressed;
# CAPSA_VM_ACCEL=kvm uses KVM where nesting works.
set -euo pipefail
build=$(cd "$1" && pwd)
shift
command -v qemu-system-x86_64 >/dev/null || { echo "no qemu: skipped"; exit 77; }
accel=${CAPSA_VM_ACCEL:-tcg}
CACHE=${CACHE:-/var/cache/capsa-vm}
mkdir -p "$CACHE"
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { echo "linux-image-amd64 unknown to apt"; exit 1; }
if [ ! -d "$CACHE/$pkg" ]; then
	(cd "$CACHE" && apt-get download "$pkg" >/dev/null)
	dpkg-deb -x "$CACHE/${pkg}"_*.deb "$CACHE/$pkg"
	rm -f "$CACHE/${pkg}"_*.deb
fi
kdir="$CACHE/$pkg"
kver=${pkg#linux-image-}
kernel=$(ls "$kdir"/boot/vmlinuz-*)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,lib,lib64,usr/lib,proc,sys,dev,tmp,tests,etc}
cp /bin/busybox "$root/bin/busybox"
cp "$kdir/lib/modules/$kver/kernel/fs/overlayfs/overlay.ko" "$root/overlay.ko"
for t in "$@"; do
	cp "$build/tests/unit/$t" "$root/tests/"
	# the shared libraries, at their paths
	ldd "$build/tests/unit/$t" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# Stage 1: the initramfs is "rootfs", which pivot_root cannot leave:
# copy everything onto a tmpfs and switch to it.
/bin/busybox mkdir -p /newroot
/bin/busybox mount -t tmpfs -o size=512m tmpfs /newroot
for d in bin lib lib64 usr tests etc overlay.ko init2; do /bin/busybox cp -a /$d /newroot/ 2>/dev/null; done
/bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp
exec /bin/busybox switch_root /newroot /init2
EOF
cat >"$root/init2" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount --make-rshared /
insmod /overlay.ko
echo "# guest kernel $(uname -r), /sys/fs/cgroup: $(stat -f -c %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
rc=0
for t in /tests/*; do
	echo "=== $(basename "$t")"
	"$t" || rc=1
done
echo "=== vm-test rc=$rc"
poweroff -f
EOF
chmod +x "$root/init" "$root/init2"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.gz")
timeout 900 qemu-system-x86_64 -accel "$accel" -cpu max -m 1536 -smp 2 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1 cgroup_no_v1=all" </dev/null | tr -d '\r' | tee "$work/out.txt" |
	grep -v -E '^\[ *[0-9]+\.[0-9]+\]'
grep -q "=== vm-test rc=0" "$work/out.txt"
