#!/bin/sh
# netns_exec.sh NS CMD [ARG...]: runs CMD in the network namespace
# /run/netns/NS the way `ip netns exec NS` does (in a mount namespace of its
# own, the files of /etc/netns/NS bound over those of /etc, a sysfs of NS on
# /sys), but keeps the machine's cgroup mounts: `ip netns exec` replaces
# /sys and with it /sys/fs/cgroup, and capsa run there finds no cgroup
# hierarchy and runs its sandboxes without one.  Used by tests/e2e/netenv.py.
# Every step execs the next: CMD ends up with the caller's pid.
set -eu
ns=$1
shift
# shellcheck disable=SC2016 # the script is expanded by the inner shell
exec nsenter --net="/run/netns/$ns" -- unshare --mount --propagation slave -- /bin/sh -eu -c '
ns=$1
shift
for f in "/etc/netns/$ns"/*; do
	if [ -f "$f" ]; then
		mount --bind "$f" "/etc/${f##*/}"
	fi
done
exec 3</sys/fs/cgroup
mount -t sysfs -o nosuid,nodev,noexec "$ns" /sys
# -c: the path is the fd of the old /sys/fs/cgroup, not the name it had
mount -c --rbind /proc/self/fd/3 /sys/fs/cgroup
exec 3<&-
exec "$@"' netns_exec "$ns" "$@"
