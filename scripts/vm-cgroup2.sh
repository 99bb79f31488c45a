#!/bin/bash
# Runs capsa's end-to-end tests in a QEMU VM whose kernel has only cgroup v2
# (cgroup_no_v1=all), with +memory +pids +cpu enabled at the root: the host
# this project is developed on mounts its controllers as v1, so rootless
# mode's delegated v2 limits can only be exercised here.
#
# Usage (as root, after scripts/build.sh):
#   scripts/vm-cgroup2.sh                       # the default test set, below
#   scripts/vm-cgroup2.sh tests/e2e/test_x.py -k foo   # any pytest arguments
#   CAPSA_BUILD=$PWD/build-asan scripts/vm-cgroup2.sh  # the ASan build
#
# What it does:
#   1. fetches the Debian kernel package (linux-image-amd64's current
#      dependency) with apt-get download and unpacks it into the cache
#      ($CAPSA_VM_CACHE, default /var/cache/capsa-vm; 800 MB), once;
#   2. builds a small initramfs: busybox-static and the modules needed to
#      mount this machine's own root filesystem over 9p (virtio) read-only,
#      plus virtio_blk, ext4, overlay and loop;
#   3. makes a sparse ext4 scratch disk for /tmp (the stores, the test
#      users' homes) and a copy of /etc (the tests add a user and
#      subordinate ranges);
#   4. boots it with qemu-system-x86_64 -nographic (TCG when there is no
#      CAPSA_VM_ACCEL), runs pytest inside as root and prints the results on the
#      console, which is this script's output.
#
# Exit status: pytest's inside the VM (0 when everything passed); 77 when
# qemu-system-x86_64 is missing; 1 for a VM that did not report a result.
#
# Time, measured on the 2-core development machine under TCG (its /dev/kvm
# hangs a guest): ~45 s once for the kernel (apt-get download 9 s, unpack
# 13 s, busybox depmod 20 s) and the initramfs; then per run ~5 s to boot
# into this machine's root and ~3 s to be ready, and the tests at about an
# eighth of native speed: test_rootless.py 104 s (12 s natively),
# test_limits.py + test_stats.py 139 s; the default set about 4.5 minutes.
# Too long for CI (scripts/test.sh): run it by hand after changing cgroup
# or rootless code.
#
# Needs (scripts/deps.sh has them): qemu-system-x86, busybox-static, cpio,
# e2fsprogs, and the Debian mirror for the kernel package.
#
# Environment: CAPSA_BUILD (default ./build), CAPSA_VM_CACHE, CAPSA_VM_MEM
# (default 2G), CAPSA_VM_CPUS (default 2), CAPSA_VM_TIMEOUT (seconds,
# default 3600), CAPSA_VM_ACCEL (default tcg,thread=multi; kvm where it works).
set -euo pipefail

DEFAULT_TESTS=(tests/e2e/test_rootless.py tests/e2e/test_limits.py tests/e2e/test_stats.py)
# The preloaded modules: 9p root over virtio, the scratch disk, and what
# capsa mounts (overlay, loop for --disk). Their dependencies come along.
MODULES=(virtio_pci 9pnet_virtio 9p virtio_blk crc32c_generic ext4 overlay loop)

die() { echo "vm-cgroup2: $*" >&2; exit 1; }

# ---- inside the VM: PID 1 after switch_root --------------------------------

inside_mounts() {
	mount -t tmpfs -o mode=0755 tmpfs /run
	mkdir -p /dev/pts /dev/shm
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
	mount -t tmpfs -o mode=1777 tmpfs /dev/shm
	mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
	mount -t ext4 /dev/vda /tmp
	chmod 1777 /tmp
	# writable places outside /tmp: the host made copies of /etc and
	# /var/log on the scratch disk (useradd writes there), and empty ones
	local d
	for d in /etc /var/log /var/tmp /var/cache/containers /var/lib/capsa /root; do
		[ -d "$d" ] || continue
		mkdir -p "/tmp/.vm$d"
		mount --bind "/tmp/.vm$d" "$d"
	done
	ip link set lo up
}

inside_cgroups() {
	# the root's processes stay in the root: only the v2 "no internal
	# processes" rule's exception for the root lets us enable controllers
	# here and still run the tests from the root group
	echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control
	echo "cgroup2 root: controllers [$(cat /sys/fs/cgroup/cgroup.controllers)]," \
		"subtree_control [$(cat /sys/fs/cgroup/cgroup.subtree_control)]"
	if [ -e /proc/self/cgroup ] && grep -qv '^0::' /proc/self/cgroup; then
		echo "vm-cgroup2: a v1 hierarchy exists despite cgroup_no_v1=all" >&2
		return 1
	fi
}

inside() {
	local job=$1 rc=0
	# shellcheck disable=SC1090
	. "$job"                       # WT, BUILD, PYTEST_ARGS; read before /tmp is covered
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export HOME=/root LANG=C.UTF-8 CAPSA_BUILD=$BUILD PYTHONDONTWRITEBYTECODE=1
	echo "vm-cgroup2: at $(cut -d' ' -f1 /proc/uptime) s: in the host's root filesystem"
	inside_mounts && inside_cgroups || rc=1
	echo "vm-cgroup2: at $(cut -d' ' -f1 /proc/uptime) s: mounts and cgroups ready"
	echo "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
	if [ "$rc" = 0 ]; then
		cd "$WT"
		local t0=$SECONDS
		/usr/bin/python3 -m pytest -p no:cacheprovider -q -rs --color=no "${PYTEST_ARGS[@]}" </dev/null || rc=$?
		echo "vm-cgroup2: pytest took $((SECONDS - t0)) s"
	fi
	echo "vm-cgroup2: result rc=$rc"
	sync
	exec /bin/busybox poweroff -f
}

if [ "${1:-}" = "--inside" ]; then
	inside "$2"
fi

# ---- on the host -----------------------------------------------------------

WT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${CAPSA_BUILD:-$WT/build}
CACHE=${CAPSA_VM_CACHE:-/var/cache/capsa-vm}
MEM=${CAPSA_VM_MEM:-2G}
CPUS=${CAPSA_VM_CPUS:-2}
TIMEOUT=${CAPSA_VM_TIMEOUT:-3600}

if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "vm-cgroup2: SKIP: qemu-system-x86_64 is not installed (Debian package qemu-system-x86)" >&2
	exit 77
fi
[ "$(id -u)" = 0 ] || die "must run as root (the tests inside run as root, and apt-get downloads the kernel)"
[ -x "$BUILD/capsa" ] || die "no capsa build in $BUILD; run scripts/build.sh first"
case "$WT$BUILD" in *" "*) die "the worktree and build paths must not contain spaces" ;; esac
for t in busybox cpio mkfs.ext4 apt-get dpkg-deb; do
	command -v "$t" >/dev/null || die "$t is missing (see scripts/deps.sh)"
done
busybox --list | grep -x depmod >/dev/null || die "busybox has no depmod applet; install busybox-static"

fetch_kernel() {
	local pkg
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$pkg" ] || die "apt-cache does not know linux-image-amd64's kernel package; run apt-get update"
	KVER=${pkg#linux-image-}
	KROOT=$CACHE/$KVER
	[ -f "$KROOT/boot/vmlinuz-$KVER" ] && [ -f "$KROOT/lib/modules/$KVER/modules.dep" ] && return
	echo "vm-cgroup2: fetching $pkg" >&2
	rm -rf "$KROOT" "$CACHE"/dl
	mkdir -p "$CACHE/dl"
	(cd "$CACHE/dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
	dpkg-deb -x "$CACHE"/dl/"$pkg"_*.deb "$KROOT.part"
	busybox depmod -b "$KROOT.part" "$KVER"
	rm -rf "$CACHE/dl"
	mv "$KROOT.part" "$KROOT"
}

# modules.dep's closure of the arguments, as paths relative to the modules dir
module_closure() {
	local dep=$KROOT/lib/modules/$KVER/modules.dep
	awk -v want="$*" '
		BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) need[w[i]] = 1 }
		{ path = substr($1, 1, length($1) - 1); name = path; sub(/.*\//, "", name); sub(/\.ko$/, "", name)
		  gsub(/-/, "_", name); if (name in need) { print path; for (i = 2; i <= NF; i++) print $i } }
	' "$dep" | sort -u
}

build_initramfs() {
	local img=$CACHE/initramfs-$KVER.cpio.gz dir m
	[ -f "$img" ] && [ "$img" -nt "$0" ] && { INITRD=$img; return; }
	dir=$(mktemp -d)
	mkdir -p "$dir"/{bin,proc,sys,dev,newroot,lib/modules/"$KVER"}
	cp "$(command -v busybox)" "$dir/bin/busybox"
	for m in $(module_closure "${MODULES[@]}"); do
		mkdir -p "$dir/lib/modules/$KVER/$(dirname "$m")"
		cp "$KROOT/lib/modules/$KVER/$m" "$dir/lib/modules/$KVER/$m"
		grep "^$m:" "$KROOT/lib/modules/$KVER/modules.dep" >> "$dir/lib/modules/$KVER/modules.dep"
	done
	cat > "$dir/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $MODULES; do modprobe $m || echo "initramfs: modprobe $m failed"; done
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /newroot; then
	echo "initramfs: cannot mount the host's root over 9p"; echo "vm-cgroup2: result rc=1"; poweroff -f
fi
wt=$(arg capsa_wt)
job=$(arg capsa_job)
for d in dev proc sys; do mount --move /$d /newroot/$d; done
exec switch_root /newroot /bin/bash "$wt/scripts/vm-cgroup2.sh" --inside "$job"
EOF
	sed -i "s|\$MODULES|${MODULES[*]}|" "$dir/init"
	chmod 755 "$dir/init"
	(cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) > "$img.part"
	rm -rf "$dir"
	mv "$img.part" "$img"
	INITRD=$img
}

mkdir -p "$CACHE"
fetch_kernel
build_initramfs

RUN=$(mktemp -d /tmp/capsa-vm-XXXXXX)
trap 'rm -rf "$RUN"' EXIT
if [ $# -gt 0 ]; then args=("$@"); else args=("${DEFAULT_TESTS[@]}"); fi
{
	printf 'WT=%q\nBUILD=%q\nPYTEST_ARGS=(' "$WT" "$BUILD"
	printf '%q ' "${args[@]}"
	printf ')\n'
} > "$RUN/job"
# the scratch disk, with copies of /etc and /var/log (copied here: over 9p
# from inside, it takes 20 s)
mkdir -p "$RUN/disk/.vm/var"
cp -a /etc "$RUN/disk/.vm/etc"
cp -a /var/log "$RUN/disk/.vm/var/log"
truncate -s 16G "$RUN/scratch.img"
mkfs.ext4 -q -F -d "$RUN/disk" -E lazy_itable_init=1,lazy_journal_init=1 "$RUN/scratch.img"
rm -rf "$RUN/disk"

# TCG unless asked: on the development machine /dev/kvm exists but a KVM
# guest hangs before its first console line (no nested virtualization)
accel=${CAPSA_VM_ACCEL:-tcg,thread=multi}
echo "vm-cgroup2: booting $KVER ($accel, $CPUS cpus, $MEM), tests: ${args[*]}" >&2
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
	-machine q35 -accel $accel -cpu max -smp "$CPUS" -m "$MEM" \
	-display none -monitor none -serial stdio -no-reboot \
	-kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$INITRD" \
	-append "console=ttyS0 panic=-1 quiet cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 capsa_wt=$WT capsa_job=$RUN/job" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-drive file="$RUN/scratch.img",if=virtio,format=raw,cache=unsafe \
	-nic none </dev/null | tee "$RUN/console.log" || true
rc=$(sed -n 's/.*vm-cgroup2: result rc=\([0-9]*\).*/\1/p' "$RUN/console.log" | tail -1)
[ -n "$rc" ] || die "the VM did not report a result (boot failure or timeout after ${TIMEOUT}s)"
exit "$rc"
