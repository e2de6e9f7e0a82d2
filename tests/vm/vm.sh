#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/vm/vm.sh - run commands inside a Debian 12 stock kernel under qemu (TCG):
# 6.1 (bookworm, the default) or 6.12 (bookworm-backports), chosen with --kernel.
#
#   vm.sh fetch [--kernel K]                    download kernel, build initramfs (idempotent)
#   vm.sh run [--kernel K] [OPTIONS] -- CMD...  boot, run CMD as root in the host's file tree
#   vm.sh shell [--kernel K] [OPTIONS]          same guest, interactive shell on the console
#
# See tests/vm/README.md for details. Exit codes of `run`: the exit code of CMD,
# or 125 when the VM itself failed (panic, timeout, no result), or 2 on usage errors.
set -Eeuo pipefail
trap 'printf "vm.sh: internal error at line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
readonly SCRIPT_DIR SELF
readonly GUEST_INIT="$SCRIPT_DIR/guest-init.sh"
readonly CACHE="${TARDY_VM_CACHE:-/var/cache/tardy-vm}"
readonly VM_FAIL=125
# The kernels vm.sh knows (--kernel / TARDY_VM_KERNEL); the first is the default.
readonly KERNELS=(6.1 6.12)
# Boots of `run` when the kernel panics before CMD starts (see cmd_run).
readonly BOOT_ATTEMPTS=3

# Modules every guest gets (dependencies are added automatically). A module that
# is built into the kernel is fine; a required one that is neither is an error.
# BOOT_* modules are loaded before the shares are mounted; the others load in the
# background while the guest sets up its mounts.
readonly BOOT_REQUIRED_MODULES=(virtio_pci 9pnet_virtio 9p virtio_console)
readonly BOOT_OPTIONAL_MODULES=(overlay)
readonly REQUIRED_MODULES=(
	veth sch_fq sch_netem sch_ingress cls_bpf ifb sch_htb sch_tbf sch_prio
)
# Nice to have; skipped silently when absent.
readonly OPTIONAL_MODULES=(
	sch_pfifo_fast act_bpf act_mirred act_gact cls_u32 cls_matchall cls_basic sch_sfq dummy
)

log() { printf 'vm.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit "$VM_FAIL"
}

usage() {
	cat <<'EOF'
usage: vm.sh fetch [--kernel 6.1|6.12]
       vm.sh run [--kernel 6.1|6.12] [--timeout SECONDS] [--mem MB] [--out DIR] [--verbose]
                 -- CMD [ARGS...]
       vm.sh shell [--kernel 6.1|6.12] [--mem MB] [--out DIR]

Boots a Debian 12 stock amd64 kernel in qemu (TCG), with the host's root file
system shared read-only (writes go to a tmpfs overlay), and runs CMD as root in
the current directory. Exit code: CMD's, or 125 if the VM failed.

Kernels (--kernel, default 6.1):
  6.1    bookworm's linux-image-6.1.0-N-amd64 (the linux-image-amd64 metapackage's)
  6.12   newest linux-image-6.12.N+deb12-amd64 in bookworm-backports, looked up in
         a private apt state under the cache (the host's apt sources are not changed)

Environment:
  TARDY_VM_KERNEL       default for --kernel (6.1)
  TARDY_VM_CACHE        cache directory (default /var/cache/tardy-vm)
  TARDY_VM_OUT          host directory shared read-write at the same path
                        (default: a fresh temporary directory, removed if empty)
  TARDY_VM_TIMEOUT      default for --timeout (600)
  TARDY_VM_MEM          default for --mem (2048)
  TARDY_VM_KERNEL_PKG   pin the chosen kernel's package (e.g. linux-image-6.1.0-56-amd64)
  TARDY_VM_EXTRA_MODULES  extra kernel modules to load (space separated)
  TARDY_VM_ACCEL        qemu accelerator (default tcg; this host's KVM hangs)
  TARDY_VM_CPU          qemu CPU model (default max)
  CI, TARDY_*           passed through into the guest command's environment
EOF
}

# ---------------------------------------------------------------------------
# host packages

apt_lists_ready() {
	local cand
	cand="$(apt-cache policy linux-image-amd64 2>/dev/null | sed -n 's/^ *Candidate: //p')"
	[[ -n "$cand" && "$cand" != "(none)" ]]
}

apt_update() {
	log "apt-get update"
	apt-get update -qq >&2 || die "apt-get update failed"
}

ensure_host_tools() {
	local -a missing=()
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	command -v cpio >/dev/null || missing+=(cpio)
	command -v xz >/dev/null || missing+=(xz-utils)
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' ||
		missing+=(busybox-static)
	((${#missing[@]})) || return 0
	log "installing host packages: ${missing[*]}"
	apt_lists_ready || apt_update
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >&2; then
		apt_update
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >&2 || die "cannot install ${missing[*]}"
	fi
}

# ---------------------------------------------------------------------------
# kernel

SERIES="" CURRENT="" INITRD="" BPO=""
APT_OPTS=()

# set_kernel K: checks K (one of KERNELS) and sets SERIES, the per-kernel cache names
# and APT_OPTS, the options that point apt-get/apt-cache at the apt state that has it.
set_kernel() {
	local k
	for k in "${KERNELS[@]}"; do
		[[ "$1" == "$k" ]] || continue
		SERIES="$k"
		CURRENT="$CACHE/current-$k"
		INITRD="$CACHE/initramfs-$k"
		APT_OPTS=()
		if [[ "$k" == 6.12 ]]; then
			# bookworm-backports lives in a private apt state (sources, lists, package
			# cache) under the cache directory: the host's sources never list it, so no
			# `apt-get install` on this machine can pick a package from it.
			BPO="$CACHE/apt-backports"
			APT_OPTS=(-o "Dir::Etc::SourceList=/dev/null"
				-o "Dir::Etc::SourceParts=$BPO/sources.list.d"
				-o "Dir::State::Lists=$BPO/lists" -o "Dir::Cache=$BPO/cache")
		fi
		return 0
	done
	log "unknown kernel '$1' (--kernel or TARDY_VM_KERNEL): one of ${KERNELS[*]}"
	exit 2
}

# Does apt know the chosen kernel's packages? For 6.12: are the private backports lists
# there and less than a day old (so `fetch` finds a new ABI within a day)?
kernel_lists_ready() {
	if [[ "$SERIES" == 6.12 ]]; then
		[[ -n "$(find "$BPO/lists" -maxdepth 1 -name '*bookworm-backports*Packages*' \
			-mmin -1440 2>/dev/null | head -n1)" ]]
	else
		apt_lists_ready
	fi
}

kernel_apt_update() {
	local uri key=/usr/share/keyrings/debian-archive-keyring.gpg
	if [[ "$SERIES" != 6.12 ]]; then
		apt_update
		return
	fi
	# The same archive the host's bookworm entry uses (a mirror or proxy), suite
	# bookworm-backports.
	uri="$(apt-cache policy 2>/dev/null |
		awk '$3 == "bookworm/main" && $2 ~ /^[a-z0-9+]+:\/\// { print $2; exit }')"
	mkdir -p "$BPO/sources.list.d" "$BPO/lists/partial" "$BPO/cache/archives/partial"
	{
		echo "# written by tests/vm/vm.sh; read only by its private apt state ($BPO)"
		echo "Types: deb"
		echo "URIs: ${uri:-http://deb.debian.org/debian}"
		echo "Suites: bookworm-backports"
		echo "Components: main"
		[[ ! -f "$key" ]] || echo "Signed-By: $key"
	} >"$BPO/sources.list.d/bookworm-backports.sources"
	log "apt-get update (bookworm-backports, private lists in $BPO)"
	if ! apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User=root update -qq >&2; then
		# Offline with lists from an earlier update: go on with those.
		[[ -n "$(find "$BPO/lists" -maxdepth 1 -name '*bookworm-backports*Packages*' \
			2>/dev/null | head -n1)" ]] ||
			die "apt-get update of bookworm-backports (${uri:-http://deb.debian.org/debian}) failed"
		log "warning: apt-get update of bookworm-backports failed; using the lists of an earlier update"
	fi
}

resolve_kernel_pkg() {
	local pkg="" p
	if [[ -n "${TARDY_VM_KERNEL_PKG:-}" ]]; then
		printf '%s\n' "$TARDY_VM_KERNEL_PKG"
		return
	fi
	if [[ "$SERIES" == 6.12 ]]; then
		# The newest generic image (not -rt, -cloud, -dbg or -unsigned) apt has a
		# version of.
		for p in $(apt-cache "${APT_OPTS[@]}" pkgnames linux-image-6.12. 2>/dev/null |
			grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -rV || true); do
			if apt-cache "${APT_OPTS[@]}" show --no-all-versions "$p" 2>/dev/null |
				grep -q '^Version: '; then
				pkg="$p"
				break
			fi
		done
		[[ -n "$pkg" ]] || return 1
		printf '%s\n' "$pkg"
		return
	fi
	pkg="$(apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends: //p' | tr ',|' '\n' | sed 's/^ *//; s/ .*//' |
		grep -E '^linux-image-[0-9][^ ]*-amd64$' | head -n1 || true)"
	if [[ -z "$pkg" ]]; then
		pkg="$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
			grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' | sort -V | tail -n1 || true)"
	fi
	[[ -n "$pkg" ]] || return 1
	printf '%s\n' "$pkg"
}

# Sets KDIR (extracted package tree), KVER, VMLINUZ, MODDIR from $CURRENT.
load_current() {
	KDIR="$(readlink -f "$CURRENT" 2>/dev/null || true)"
	[[ -n "$KDIR" && -f "$KDIR/.complete" ]] || return 1
	KVER="$(cat "$KDIR/.kver")"
	MODDIR="$KDIR/lib/modules/$KVER"
	[[ -d "$MODDIR" ]] || MODDIR="$KDIR/usr/lib/modules/$KVER"
	[[ -f "$KDIR/.boot-image" ]] || return 1
	VMLINUZ="$KDIR/$(cat "$KDIR/.boot-image")"
	[[ -f "$VMLINUZ" && -d "$MODDIR" ]]
}

# prepare_boot_image DIR: qemu boots an uncompressed vmlinux through its PVH entry
# point about 4 s faster under TCG than the xz-compressed bzImage (no decompression
# in emulation). Falls back to the bzImage when that is not possible.
prepare_boot_image() {
	local dir="$1" kver bz magic tool off out="$1/boot/vmlinux.tmp"
	kver="$(cat "$dir/.kver")"
	bz="boot/vmlinuz-$kver"
	if grep -qx 'CONFIG_PVH=y' "$dir/boot/config-$kver" 2>/dev/null; then
		for magic in xz zstd gzip; do
			case "$magic" in
			xz) tool=(xz -dc --single-stream) ; off=$'\xfd7zXZ' ;;
			zstd) tool=(zstd -qdc) ; off=$'\x28\xb5\x2f\xfd' ;;
			gzip) tool=(gzip -dc) ; off=$'\x1f\x8b\x08' ;;
			esac
			command -v "${tool[0]}" >/dev/null || continue
			for off in $(LC_ALL=C grep -obUa "$off" "$dir/$bz" | head -n 3 | cut -d: -f1 || true); do
				tail -c +"$((off + 1))" "$dir/$bz" | "${tool[@]}" >"$out" 2>/dev/null || true
				if [[ "$(head -c 4 "$out" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
					mv "$out" "$dir/boot/vmlinux-$kver"
					printf '%s\n' "boot/vmlinux-$kver" >"$dir/.boot-image"
					return 0
				fi
			done
		done
		rm -f "$out"
	fi
	printf '%s\n' "$bz" >"$dir/.boot-image"
}

fetch_kernel() {
	local pkg ver key dest tmp deb kver l d
	local -A keep=()
	kernel_lists_ready || kernel_apt_update
	pkg="$(resolve_kernel_pkg)" || { kernel_apt_update; pkg="$(resolve_kernel_pkg)"; } ||
		die "cannot find Debian's $SERIES kernel package (linux-image-$SERIES*-amd64) in apt"
	ver="$(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$pkg" 2>/dev/null |
		sed -n 's/^Version: //p' | head -n1 || true)"
	[[ -n "$ver" ]] || die "apt knows no version of $pkg"
	key="${pkg}_${ver}"
	dest="$CACHE/kernels/$key"
	if [[ ! -f "$dest/.complete" ]]; then
		log "downloading $pkg $ver"
		tmp="$(mktemp -d "$CACHE/dl.XXXXXX")"
		if ! (cd "$tmp" && apt-get "${APT_OPTS[@]}" download -qq -o APT::Sandbox::User=root \
			"$pkg=$ver" >&2); then
			kernel_apt_update
			(cd "$tmp" && apt-get "${APT_OPTS[@]}" download -qq -o APT::Sandbox::User=root \
				"$pkg=$ver" >&2) ||
				{ rm -rf "$tmp"; die "apt-get download $pkg=$ver failed"; }
		fi
		deb="$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n1)"
		rm -rf "$dest"
		mkdir -p "$dest"
		dpkg-deb -x "$deb" "$dest" || { rm -rf "$tmp" "$dest"; die "dpkg-deb -x $deb failed"; }
		rm -rf "$tmp"
		kver="$(find "$dest/lib/modules" "$dest/usr/lib/modules" -mindepth 1 -maxdepth 1 \
			-type d -printf '%f\n' 2>/dev/null | head -n1 || true)"
		[[ -n "$kver" && -f "$dest/boot/vmlinuz-$kver" ]] || die "no vmlinuz/modules in $pkg"
		printf '%s\n' "$kver" >"$dest/.kver"
		touch "$dest/.complete"
	fi
	[[ -f "$dest/.boot-image" ]] || prepare_boot_image "$dest"
	ln -sfn "kernels/$key" "$CURRENT.tmp"
	mv -T "$CURRENT.tmp" "$CURRENT"
	load_current || die "kernel cache $dest is broken"
	# Drop older kernels: every one no current-* link points at.
	for l in "$CACHE"/current-*; do
		if [[ -L "$l" ]]; then keep["$(basename "$(readlink "$l")")"]=1; fi
	done
	for d in "$CACHE"/kernels/*/; do
		d="${d%/}"
		[[ -n "${keep[${d##*/}]:-}" ]] || rm -rf "$d"
	done
}

# ---------------------------------------------------------------------------
# initramfs

NORM=""
declare -A MOD_PATH=() MOD_BUILTIN=() MOD_DEPS=() MOD_SEEN=()
MOD_ORDER=()

# mod_norm PATH-OR-NAME: sets NORM to the module name (no fork: called ~4000 times).
mod_norm() {
	NORM="${1##*/}"
	NORM="${NORM%%.ko*}"
	NORM="${NORM//-/_}"
}

mod_cat() {
	case "$1" in
	*.ko.xz) xz -dc "$1" ;;
	*.ko.zst) zstd -qdc "$1" ;;
	*.ko.gz) gzip -dc "$1" ;;
	*) cat "$1" ;;
	esac
}

mod_index() {
	local f n line deps d
	while IFS= read -r f; do
		mod_norm "$f"
		MOD_PATH["$NORM"]="$f"
	done < <(find "$MODDIR/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
	if [[ -f "$MODDIR/modules.builtin" ]]; then
		while IFS= read -r f; do
			mod_norm "$f"
			MOD_BUILTIN["$NORM"]=1
		done <"$MODDIR/modules.builtin"
	fi
	# modules.dep when the package ships one (Debian's does not: depmod runs at install).
	if [[ -f "$MODDIR/modules.dep" ]]; then
		while IFS= read -r line; do
			mod_norm "${line%%:*}"
			n="$NORM"
			deps=""
			for d in ${line#*:}; do
				mod_norm "$d"
				deps+="$NORM "
			done
			MOD_DEPS["$n"]="$deps"
		done <"$MODDIR/modules.dep"
	fi
}

mod_deps() {
	local n="$1"
	if [[ -z "${MOD_DEPS[$n]+x}" ]]; then
		MOD_DEPS["$n"]="$(mod_cat "${MOD_PATH[$n]}" | tr '\0' '\n' |
			sed -n 's/^depends=//p' | head -n1 | tr ',' ' ')"
	fi
	printf '%s' "${MOD_DEPS[$n]}"
}

mod_visit() {
	local n required="$2" d
	mod_norm "$1"
	n="$NORM"
	[[ -z "${MOD_SEEN[$n]:-}" ]] || return 0
	MOD_SEEN["$n"]=1
	[[ -z "${MOD_BUILTIN[$n]:-}" ]] || return 0
	if [[ -z "${MOD_PATH[$n]:-}" ]]; then
		[[ "$required" != 1 ]] || die "kernel module $n is neither built in nor shipped in $KVER"
		return 0
	fi
	for d in $(mod_deps "$n"); do mod_visit "$d" 1; done
	MOD_ORDER+=("$n")
}

initramfs_stamp() {
	{
		cat "$SELF" "$GUEST_INIT" 2>/dev/null || true
		[[ ! -f /bin/busybox ]] || sha256sum /bin/busybox
		printf '%s\n' "$KDIR" "${TARDY_VM_EXTRA_MODULES:-}"
	} | sha256sum | cut -d' ' -f1
}

initramfs_fresh() {
	[[ -f "$INITRD.gz" && -f "$INITRD.stamp" ]] &&
		[[ "$(cat "$INITRD.stamp")" == "$(initramfs_stamp)" ]]
}

build_initramfs() {
	local stage m
	log "building initramfs for $KVER"
	stage="$(mktemp -d "$CACHE/initramfs.XXXXXX")"
	mkdir -p "$stage/bin" "$stage/lib/modules" "$stage/proc" "$stage/sys" "$stage/dev" \
		"$stage/tmp" "$stage/host" "$stage/ctl" "$stage/upper" "$stage/newroot"
	cp /bin/busybox "$stage/bin/busybox"
	install -m 0755 "$GUEST_INIT" "$stage/init"
	mod_index
	for m in "${BOOT_REQUIRED_MODULES[@]}"; do mod_visit "$m" 1; done
	for m in "${BOOT_OPTIONAL_MODULES[@]}"; do mod_visit "$m" 0; done
	printf '%s\n' "${MOD_ORDER[@]}" >"$stage/lib/modules/order.boot"
	local nboot="${#MOD_ORDER[@]}"
	for m in "${REQUIRED_MODULES[@]}"; do mod_visit "$m" 1; done
	for m in "${OPTIONAL_MODULES[@]}"; do mod_visit "$m" 0; done
	# shellcheck disable=SC2086 # word splitting of the list is intended
	for m in ${TARDY_VM_EXTRA_MODULES:-}; do mod_visit "$m" 1; done
	printf '%s\n' "${MOD_ORDER[@]:$nboot}" >"$stage/lib/modules/order.late"
	for m in "${MOD_ORDER[@]}"; do
		mod_cat "${MOD_PATH[$m]}" >"$stage/lib/modules/$m.ko"
	done
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) | gzip -6 >"$INITRD.gz.tmp"
	mv "$INITRD.gz.tmp" "$INITRD.gz"
	printf '%s\n' "${MOD_ORDER[@]}" >"$INITRD.modules"
	initramfs_stamp >"$INITRD.stamp"
	rm -rf "$stage"
}

lock_cache() {
	mkdir -p "$CACHE/kernels"
	exec 9>"$CACHE/.lock"
	flock 9
	# A cache from before there were two kernels: `current` was the 6.1 kernel.
	if [[ -L "$CACHE/current" ]]; then
		[[ -e "$CACHE/current-6.1" ]] || mv -T "$CACHE/current" "$CACHE/current-6.1"
		rm -f "$CACHE/current" "$CACHE/initramfs.gz" "$CACHE/initramfs.stamp" \
			"$CACHE/initramfs.modules"
	fi
}

cmd_fetch() {
	parse_opts "$@"
	((${#CMD[@]} == 0)) || { usage >&2; exit 2; }
	ensure_host_tools
	lock_cache
	fetch_kernel
	initramfs_fresh || build_initramfs
	log "ready: kernel $SERIES: $KVER ($(basename "$KDIR")), cache $CACHE"
}

# Cheap path for run/shell: only touch apt when there is no usable kernel yet.
ensure_ready() {
	if command -v qemu-system-x86_64 >/dev/null && load_current && initramfs_fresh; then
		return 0
	fi
	ensure_host_tools
	lock_cache
	load_current || fetch_kernel
	initramfs_fresh || build_initramfs
	exec 9>&-
}

# ---------------------------------------------------------------------------
# boot

shq() { local s="${1//\'/\'\\\'\'}"; printf "'%s'" "$s"; }

QEMU_PID=""
READER_PIDS=()
CTL=""
OUT=""
OUT_CREATED=0

cleanup() {
	local rc=$?
	trap - ERR
	if [[ -n "$QEMU_PID" ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill -TERM "$QEMU_PID" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$QEMU_PID" 2>/dev/null || break
			sleep 0.5
		done
		kill -KILL "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
	fi
	if ((${#READER_PIDS[@]})); then
		kill "${READER_PIDS[@]}" 2>/dev/null || true
		wait "${READER_PIDS[@]}" 2>/dev/null || true
	fi
	[[ -z "$CTL" ]] || rm -rf "$CTL"
	if [[ "$OUT_CREATED" == 1 && -d "$OUT" ]]; then
		rmdir "$OUT" 2>/dev/null || log "guest output kept in $OUT"
	fi
	exit "$rc"
}

on_signal() {
	log "got SIG$1, stopping the VM"
	case "$1" in
	INT) exit 130 ;;
	HUP) exit 129 ;;
	*) exit 143 ;;
	esac
}

# prepare_vm MODE [CMD...]: writes the control share; sets QEMU_ARGS.
prepare_vm() {
	local mode="$1" v rows="" cols=""
	shift
	CTL="$(mktemp -d /tmp/tardy-vm-ctl.XXXXXX)"
	if [[ -n "${OUT_OPT:-}" ]]; then
		mkdir -p "$OUT_OPT"
		OUT="$(cd "$OUT_OPT" && pwd -P)"
	else
		OUT="$(mktemp -d /tmp/tardy-vm-out.XXXXXX)"
		OUT_CREATED=1
	fi
	if [[ "$mode" == shell && -t 0 ]]; then
		read -r rows cols < <(stty size 2>/dev/null || echo "")
	fi
	{
		printf 'TVM_MODE=%s\n' "$(shq "$mode")"
		printf 'TVM_OUT=%s\n' "$(shq "$OUT")"
		printf 'TVM_TERM=%s\n' "$(shq "${TERM:-linux}")"
		printf 'TVM_ROWS=%s\nTVM_COLS=%s\n' "$(shq "$rows")" "$(shq "$cols")"
	} >"$CTL/vm.conf"
	{
		echo '# written by tests/vm/vm.sh'
		while IFS= read -r v; do
			if [[ "$v" == CI || "$v" == TARDY_* ]]; then
				printf 'export %s=%s\n' "$v" "$(shq "${!v}")"
			fi
		done < <(compgen -e)
		printf 'export TARDY_VM=1 TARDY_VM_KERNEL=%s TARDY_VM_OUT=%s\n' "$(shq "$SERIES")" \
			"$(shq "$OUT")"
		printf 'cd -- %s || { echo "vm.sh: cannot cd into %s in the guest" >&2; exit %d; }\n' \
			"$(shq "$PWD")" "${PWD//[\"\`\$\\]/?}" "$VM_FAIL"
		if [[ "$mode" == shell ]]; then
			echo 'if [ -x /bin/bash ]; then exec /bin/bash -i; else exec /bin/sh -i; fi'
		else
			printf 'exec'
			for v in "$@"; do printf ' %s' "$(shq "$v")"; done
			printf '\n'
		fi
	} >"$CTL/run.sh"

	# A soft lockup panics the guest at once (a hung guest would otherwise sit out --timeout),
	# with its backtrace on the console (loglevel 5: the trace is printed at the default level).
	local append="console=ttyS0 panic=-1 quiet loglevel=5 softlockup_panic=1"
	[[ "${VERBOSE:-0}" != 1 ]] || append+=" tardy.verbose=1"
	local p9=(security_model=none)
	local -a bios=()
	# qboot boots -kernel faster than SeaBIOS and prints nothing on the serial line.
	[[ ! -f /usr/share/qemu/qboot.rom ]] || bios=(-bios qboot.rom)
	# 6.12 patches its own text (static keys flipped as BPF programs attach) with int3
	# breakpoints; under multi-threaded TCG another vCPU can run the half-patched code, and
	# the guest died of an Oops in __alloc_pages (RIP inside a 5-byte NOP, 39 s into a CI
	# run) or in sched_clock_cpu while booting. One TCG thread for both vCPUs serialises
	# them; 6.1 has never shown it and keeps the faster multi-threaded TCG.
	local accel=${TARDY_VM_ACCEL:-tcg}
	[[ $accel != tcg || $SERIES != 6.12 ]] || accel=tcg,thread=single
	QEMU_ARGS=(
		"${bios[@]}"
		-accel "$accel" -cpu "${TARDY_VM_CPU:-max}" -smp 2 -m "$MEM"
		-nographic -nodefaults -no-reboot -no-user-config
		-kernel "$VMLINUZ" -initrd "$INITRD.gz" -append "$append"
		-virtfs "local,path=/,mount_tag=hostroot,readonly=on,multidevs=remap,${p9[*]}"
		-virtfs "local,path=${CTL//,/,,},mount_tag=tardyctl,${p9[*]}"
		-virtfs "local,path=${OUT//,/,,},mount_tag=tardyout,${p9[*]}"
	)
}

parse_opts() {
	TIMEOUT="${TARDY_VM_TIMEOUT:-600}"
	MEM="${TARDY_VM_MEM:-2048}"
	OUT_OPT="${TARDY_VM_OUT:-}"
	VERBOSE=0
	CMD=()
	local kernel="${TARDY_VM_KERNEL:-${KERNELS[0]}}"
	while (($#)); do
		case "$1" in
		--kernel) kernel="${2:?--kernel needs a value}"; shift 2 ;;
		--kernel=*) kernel="${1#*=}"; shift ;;
		--timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
		--timeout=*) TIMEOUT="${1#*=}"; shift ;;
		--mem) MEM="${2:?--mem needs a value}"; shift 2 ;;
		--mem=*) MEM="${1#*=}"; shift ;;
		--out) OUT_OPT="${2:?--out needs a value}"; shift 2 ;;
		--out=*) OUT_OPT="${1#*=}"; shift ;;
		--verbose | -v) VERBOSE=1; shift ;;
		--) shift; CMD=("$@"); break ;;
		-h | --help) usage; exit 0 ;;
		*) CMD=("$@"); break ;;
		esac
	done
	[[ "$TIMEOUT" =~ ^[0-9]+$ && "$MEM" =~ ^[0-9]+$ ]] || { usage >&2; exit 2; }
	set_kernel "$kernel"
}

# start_reader NAME FD: copies the qemu pipe chardev "$CTL/NAME" to file descriptor FD.
start_reader() {
	mkfifo "$CTL/$1.in" "$CTL/$1.out"
	cat "$CTL/$1.out" >&"$2" &
	READER_PIDS+=("$!")
}

# Wait for the readers to drain; unblock any still waiting in open() (qemu never started).
stop_readers() {
	local n
	for n in out err; do
		[[ -p "$CTL/$n.out" ]] || continue
		: 1<>"$CTL/$n.out"
	done
	for n in "${READER_PIDS[@]}"; do wait "$n" 2>/dev/null || true; done
	READER_PIDS=()
}

print_failure_dmesg() {
	local rc="$1" start=0 total
	[[ -s "$CTL/dmesg.txt" ]] || return 0
	[[ ! -f "$CTL/dmesg.start" ]] || start="$(tr -dc '0-9' <"$CTL/dmesg.start")"
	total="$(wc -l <"$CTL/dmesg.txt")"
	{
		if ((total > ${start:-0})); then
			echo "vm.sh: command exited $rc; guest kernel log while it ran (last 60 lines):"
			tail -n +"$((${start:-0} + 1))" "$CTL/dmesg.txt" | tail -n 60
		else
			echo "vm.sh: command exited $rc; no kernel messages while it ran; end of boot log:"
			tail -n 15 "$CTL/dmesg.txt"
		fi
	} >&2
}

cmd_run() {
	parse_opts "$@"
	((${#CMD[@]})) || { usage >&2; exit 2; }
	ensure_ready
	trap cleanup EXIT
	trap 'on_signal INT' INT
	trap 'on_signal TERM' TERM
	trap 'on_signal HUP' HUP
	prepare_vm run "${CMD[@]}"
	local qrc rc msg attempt=1
	while :; do
		boot_once
		# A kernel that panics while booting, before CMD started, is booted again (up
		# to BOOT_ATTEMPTS times): 6.12 under TCG sometimes dies of an int3 Oops in
		# text patching (sched_clock_cpu) about 3.5 s into the boot. Nothing of CMD
		# has run then, so nothing runs twice.
		[[ -z "$rc" && ! -e "$CTL/dmesg.start" ]] || break
		((qrc != 124 && qrc != 137 && attempt < BOOT_ATTEMPTS)) || break
		grep -aq 'Kernel panic' "$CTL/console.log" || break
		log "guest kernel panicked while booting, before CMD started" \
			"($(grep -a -m1 -E 'Oops|BUG:|Kernel panic' "$CTL/console.log" | tr -d '\r'));" \
			"booting again (attempt $((attempt + 1)) of $BOOT_ATTEMPTS)"
		cp "$CTL/console.log" "$CTL/console.boot$attempt.log"
		rm -f "$CTL/out.in" "$CTL/out.out" "$CTL/err.in" "$CTL/err.out" "$CTL/rc" \
			"$CTL/modules.loaded" "$CTL/modules.failed" "$CTL/setup-failed" "$CTL/dmesg.txt"
		attempt=$((attempt + 1))
	done
	vm_verdict
}

# boot_once: one qemu run of the prepared VM; sets qrc (qemu's status) and rc (CMD's
# exit code, empty when the guest reported none).
boot_once() {
	local t0 t1 tail_pid=""
	qrc=0 rc=""
	# CMD's stdout/stderr travel over virtio-serial ports to FIFOs that `cat` copies to
	# our stdout/stderr: qemu never gets (and never sets O_NONBLOCK on) our own fds.
	start_reader out 1
	start_reader err 2
	: >"$CTL/console.log"
	if [[ "$VERBOSE" == 1 ]]; then
		tail -n +1 -f "$CTL/console.log" >&2 &
		tail_pid=$!
	fi
	t0="$(date +%s.%N)"
	timeout -k 10 "$TIMEOUT" qemu-system-x86_64 "${QEMU_ARGS[@]}" \
		-chardev "file,id=con0,path=$CTL/console.log" -serial chardev:con0 \
		-device virtio-serial-pci,id=vser0 \
		-chardev "pipe,id=gout,path=$CTL/out" -device virtserialport,chardev=gout,name=tardy.out \
		-chardev "pipe,id=gerr,path=$CTL/err" -device virtserialport,chardev=gerr,name=tardy.err \
		</dev/null >"$CTL/qemu.log" 2>&1 &
	QEMU_PID=$!
	wait "$QEMU_PID" || qrc=$?
	QEMU_PID=""
	t1="$(date +%s.%N)"
	stop_readers
	[[ -z "$tail_pid" ]] || { sleep 0.2; kill "$tail_pid" 2>/dev/null || true; }
	if [[ "$VERBOSE" == 1 && -s "$CTL/qemu.log" ]]; then
		sed 's/^/qemu: /' "$CTL/qemu.log" >&2
	fi
	[[ "$VERBOSE" != 1 ]] || log "VM wall time $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"

	if [[ -s "$CTL/modules.failed" ]]; then
		log "warning: kernel modules failed to load in the guest: $(tr '\n' ' ' <"$CTL/modules.failed")"
	fi
	if [[ -f "$CTL/rc" ]]; then
		rc="$(tr -dc '0-9' <"$CTL/rc")"
	fi
	if [[ -z "$rc" ]]; then
		rc="$(grep -a -o 'TARDY-VM-EXIT=[0-9]*' "$CTL/console.log" | tail -n1 | cut -d= -f2 || true)"
	fi
}

# vm_verdict: exits with CMD's exit code, or VM_FAIL saying why the VM failed.
vm_verdict() {
	if [[ -z "$rc" ]]; then
		if ((qrc == 124 || qrc == 137)); then
			msg="guest timed out after ${TIMEOUT}s (--timeout)"
		elif grep -aq 'Kernel panic' "$CTL/console.log"; then
			msg="guest kernel panicked: $(grep -a -m1 'Kernel panic' "$CTL/console.log" | tr -d '\r')"
		elif grep -aq 'TARDY-VM-SETUP-FAILED' "$CTL/console.log"; then
			msg="guest setup failed: $(grep -a -m1 -o 'TARDY-VM-SETUP-FAILED: .*' "$CTL/console.log" | tr -d '\r')"
		elif [[ -s "$CTL/qemu.log" ]]; then
			msg="qemu failed (exit status $qrc): $(head -n 3 "$CTL/qemu.log" | tr '\n' ' ')"
		else
			msg="guest stopped without reporting an exit code (qemu exit status $qrc)"
		fi
		if [[ "$VERBOSE" != 1 && -s "$CTL/console.log" ]]; then
			{
				echo "vm.sh: guest console (last 30 lines):"
				tail -n 30 "$CTL/console.log" | tr -d '\r'
			} >&2
		fi
		# The whole console outlives the run directory, for the post-mortem.
		local keep
		keep="$(mktemp /tmp/tardy-vm-console.XXXXXX.log)" && cp "$CTL/console.log" "$keep" &&
			log "guest console saved in $keep"
		log "$msg"
		exit "$VM_FAIL"
	fi
	((rc == 0)) || print_failure_dmesg "$rc"
	exit "$rc"
}

cmd_shell() {
	parse_opts "$@"
	ensure_ready
	trap cleanup EXIT
	prepare_vm shell
	log "booting kernel $SERIES: $KVER; leave with 'exit' (powers off) or Ctrl-a x"
	local qrc=0
	qemu-system-x86_64 "${QEMU_ARGS[@]}" \
		-chardev stdio,id=con0,mux=on,signal=off -serial chardev:con0 \
		-mon chardev=con0,mode=readline || qrc=$?
	exit "$qrc"
}

main() {
	local sub="${1:-}"
	(($#)) && shift
	case "$sub" in
	fetch) cmd_fetch "$@" ;;
	run) cmd_run "$@" ;;
	shell) cmd_shell "$@" ;;
	-h | --help | help) usage ;;
	*) usage >&2; exit 2 ;;
	esac
}

main "$@"
