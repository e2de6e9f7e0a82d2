#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=sh
#
# /init of the tardy test VM (runs as PID 1 inside the initramfs that
# tests/vm/vm.sh builds). It must never exit: every path ends in poweroff.
#
# Boot sequence:
#   1. busybox applets, proc/sys/dev, kernel modules (/lib/modules/order.boot now,
#      /lib/modules/order.late in the background until step 5)
#   2. 9p shares: "hostroot" (host /, read-only), "tardyctl" (per-run control
#      dir, rw), "tardyout" (TARDY_VM_OUT, rw)
#   3. new root = overlay(lower = host root, upper = tmpfs); if overlay fails,
#      the read-only host root with tmpfs on /tmp, /var/tmp, /root
#   4. proc, sysfs, devtmpfs, devpts, /dev/shm, cgroup2, bpffs, tracefs, debugfs,
#      securityfs
#      inside the new root; fresh tmpfs on /run; lo up
#   5. chroot and run /run/tardy-vm/run.sh (written by the host) with stdout and
#      stderr on the virtio-serial ports "tardy.out"/"tardy.err" (run mode) or
#      on the console (shell mode); record the exit code in the control share,
#      print TARDY-VM-EXIT=<rc> on the console (ttyS0), power off.

PATH=/bin
export PATH
/bin/busybox mkdir -p /bin /proc /sys /dev /host /ctl /upper /newroot
/bin/busybox --install -s /bin

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev

NR=/newroot
V=0
grep -q 'tardy.verbose=1' /proc/cmdline && V=1

say() { echo "tardy-vm: $*"; }
dbg() { [ "$V" = 1 ] && echo "tardy-vm[$(cut -d' ' -f1 /proc/uptime)s]: $*"; return 0; }

die() {
	echo "TARDY-VM-SETUP-FAILED: $*"
	dmesg | tail -n 30
	[ -d /ctl/. ] && echo "$*" >/ctl/setup-failed 2>/dev/null
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 3600
}

dbg "init started"

# --- kernel modules -------------------------------------------------------
# load_modules LIST RESULT: insmod the modules named in LIST (dependency order),
# appending "ok NAME" / "failed NAME" lines to RESULT.
load_modules() {
	[ -f "$1" ] || return 0
	while read -r m; do
		[ -n "$m" ] || continue
		if [ -d "/sys/module/$m" ] || insmod "/lib/modules/$m.ko" 2>"/tmp.insmod.$m"; then
			echo "ok $m" >>"$2"
		else
			echo "failed $m" >>"$2"
			say "insmod $m failed: $(cat "/tmp.insmod.$m")"
		fi
	done <"$1"
}
: >/modules.result
load_modules /lib/modules/order.boot /modules.result
# The rest (qdiscs, classifiers, veth, ...) load on the other CPU meanwhile.
load_modules /lib/modules/order.late /modules.result &
LATE_PID=$!
dbg "boot modules loaded"

# --- shares ----------------------------------------------------------------
MSIZE=512000
P9="trans=virtio,version=9p2000.L,msize=$MSIZE"
mount -t 9p -o "$P9,cache=none" tardyctl /ctl || die "cannot mount the control share (9p)"

TVM_MODE=run
TVM_OUT=
TVM_TERM=linux
TVM_ROWS=
TVM_COLS=
# shellcheck disable=SC1091
. /ctl/vm.conf || die "cannot read /ctl/vm.conf"

mount -t 9p -o "$P9,cache=loose,ro" hostroot /host || die "cannot mount the host root (9p)"
dbg "host root mounted"

# --- new root ----------------------------------------------------------------
mount -t tmpfs -o mode=0755 tmpfs /upper || die "tmpfs for overlay upper"
mkdir -p /upper/u /upper/w
ROOT_KIND="overlay"
if ! mount -t overlay overlay \
	-o lowerdir=/host,upperdir=/upper/u,workdir=/upper/w,index=off,metacopy=off \
	"$NR" 2>/ctl/overlay.err; then
	say "overlay root failed ($(cat /ctl/overlay.err)); using read-only host root"
	ROOT_KIND="readonly"
	mount --bind /host "$NR" || die "bind host root"
	for d in /tmp /var/tmp /root; do
		mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$NR$d" || die "tmpfs $d"
	done
	chmod 0700 "$NR/root"
fi
echo "$ROOT_KIND" >/ctl/root-kind

mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$NR/run" || die "tmpfs /run"
mkdir -p "$NR/run/lock" "$NR/run/tardy-vm"
chmod 1777 "$NR/run/lock"
mount --move /ctl "$NR/run/tardy-vm" || die "move control share"
CTL="$NR/run/tardy-vm"

mount -t proc -o nosuid,nodev,noexec proc "$NR/proc" || die "proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs "$NR/sys" || die "sysfs"
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs "$NR/dev" || die "devtmpfs"
mkdir -p "$NR/dev/pts" "$NR/dev/shm" "$NR/dev/mqueue"
mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$NR/dev/pts" || die "devpts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$NR/dev/shm" || die "/dev/shm"
mount -t mqueue mqueue "$NR/dev/mqueue" 2>/dev/null
ln -sfn /proc/self/fd "$NR/dev/fd"
ln -sfn /proc/self/fd/0 "$NR/dev/stdin"
ln -sfn /proc/self/fd/1 "$NR/dev/stdout"
ln -sfn /proc/self/fd/2 "$NR/dev/stderr"

mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$NR/sys/fs/cgroup" || die "cgroup2"
# Like systemd: delegate every available controller below the root cgroup.
read -r ctrls <"$NR/sys/fs/cgroup/cgroup.controllers"
for c in $ctrls; do
	echo "+$c" >"$NR/sys/fs/cgroup/cgroup.subtree_control" 2>/dev/null
done
mount -t bpf -o nosuid,nodev,noexec,mode=0700 bpf "$NR/sys/fs/bpf" || die "bpffs"
mount -t tracefs -o nosuid,nodev,noexec tracefs "$NR/sys/kernel/tracing" || die "tracefs"
mount -t debugfs -o nosuid,nodev,noexec debugfs "$NR/sys/kernel/debug" 2>/dev/null ||
	say "debugfs not mounted"
mount -t securityfs -o nosuid,nodev,noexec securityfs "$NR/sys/kernel/security" 2>/dev/null ||
	say "securityfs not mounted"

if [ -n "$TVM_OUT" ]; then
	mkdir -p "$NR$TVM_OUT" 2>/dev/null
	mount -t 9p -o "$P9,cache=none" tardyout "$NR$TVM_OUT" || die "cannot mount TARDY_VM_OUT at $TVM_OUT"
fi

hostname tardy-vm
ip link set lo up || die "lo up"
wait "$LATE_PID"
sed -n 's/^ok //p' /modules.result >"$CTL/modules.loaded"
sed -n 's/^failed //p' /modules.result >"$CTL/modules.failed"
dbg "modules loaded: $(tr '\n' ' ' <"$CTL/modules.loaded")"
dbg "guest ready, starting command"

GUEST_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# `unshare -m sh -c "$IN_NEWROOT" sh "$NR" CMD...` runs CMD in the new root as the root of a
# mount namespace of its own: the new root is moved onto / there, as switch_root does.
# chroot(2) alone would leave that namespace's root on the initramfs, and a process that joins
# the namespace later with setns(2) (`runc exec`, so `podman exec`; `nsenter -m`) would land
# in the initramfs, where no program is. PID 1 stays in the first namespace, with its paths
# under $NR.
# shellcheck disable=SC2016
IN_NEWROOT='cd "$1" && mount --move . / && shift && exec chroot . "$@"'

if [ "$TVM_MODE" = shell ]; then
	[ -n "$TVM_ROWS" ] && stty rows "$TVM_ROWS" cols "$TVM_COLS" 2>/dev/null
	say "guest shell (kernel $(uname -r)). Leave with 'exit' or Ctrl-d (powers off) or Ctrl-a x (kills qemu)."
	setsid cttyhack unshare -m sh -c "$IN_NEWROOT" sh "$NR" /usr/bin/env -i PATH="$GUEST_PATH" HOME=/root \
		TERM="$TVM_TERM" /bin/sh /run/tardy-vm/run.sh
	rc=$?
else
	# The host reads the command's stdout/stderr from two virtio-serial ports.
	OUTDEV=/dev/console
	ERRDEV=/dev/console
	for p in /sys/class/virtio-ports/*; do
		[ -f "$p/name" ] || continue
		case "$(cat "$p/name")" in
		tardy.out) OUTDEV="/dev/${p##*/}" ;;
		tardy.err) ERRDEV="/dev/${p##*/}" ;;
		esac
	done
	[ "$OUTDEV" != /dev/console ] || say "virtio port tardy.out missing, using the console"
	dmesg | wc -l >"$CTL/dmesg.start"
	unshare -m sh -c "$IN_NEWROOT" sh "$NR" /usr/bin/env -i PATH="$GUEST_PATH" HOME=/root TERM=dumb \
		/bin/sh /run/tardy-vm/run.sh </dev/null >"$OUTDEV" 2>"$ERRDEV"
	rc=$?
fi

dbg "command exited $rc"
dmesg >"$CTL/dmesg.txt" 2>/dev/null
echo "$rc" >"$CTL/rc"
sync
echo "TARDY-VM-EXIT=$rc"
# Give qemu time to hand the last output to the host before the power goes.
sleep 0.3
dbg "powering off"
echo 0 >/proc/sys/kernel/printk 2>/dev/null
poweroff -f
echo o >/proc/sysrq-trigger
sleep 3600
