#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/vm/selftest.sh - checks that the VM rig gives tardy what it needs.
# Runs INSIDE the guest only:   tests/vm/vm.sh run -- tests/vm/selftest.sh
# Traffic stays between two network namespaces that this script creates.
set -euo pipefail

if [[ "${TARDY_VM:-}" != 1 ]]; then
	echo "selftest.sh: run me in the VM: tests/vm/vm.sh run -- $0" >&2
	exit 2
fi

IP=/usr/sbin/ip
TC=/usr/sbin/tc
PY=/usr/bin/python3
NS_A=tvm-a
NS_B=tvm-b
pass=0
fail=0

ok() {
	echo "ok   - $*"
	pass=$((pass + 1))
}
bad() {
	echo "FAIL - $*"
	fail=$((fail + 1))
}
check() {
	local what="$1"
	shift
	if "$@" >/tmp/selftest.out 2>&1; then ok "$what"; else
		bad "$what"
		sed 's/^/       /' /tmp/selftest.out
	fi
}

cleanup() {
	"$IP" netns del "$NS_A" 2>/dev/null || true
	"$IP" netns del "$NS_B" 2>/dev/null || true
}
trap cleanup EXIT

# ICMP echo RTT with a host ping binary, in ms: prints "min avg max" (empty if no ping).
ping_rtt() {
	local ping=()
	if [[ -x /usr/bin/ping ]]; then ping=(/usr/bin/ping); elif [[ -x /bin/busybox ]]; then ping=(/bin/busybox ping); else return 0; fi
	"$IP" netns exec "$NS_A" "${ping[@]}" -c "$1" 10.77.0.2 2>/dev/null |
		sed -n 's#.*min/avg/max[^=]*= *\([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\).*#\1 \2 \3#p'
}

# UDP echo RTT between the namespaces, in ms: prints "min avg max" of COUNT probes.
rtt() {
	local count="$1"
	"$IP" netns exec "$NS_B" "$PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.77.0.2", 7777))
s.settimeout(15)
try:
    while True:
        d, a = s.recvfrom(64)
        s.sendto(d, a)
except socket.timeout:
    pass
' &
	local srv=$!
	"$IP" netns exec "$NS_A" "$PY" -c '
import socket, sys, time
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for i in range(40):  # wait until the echo server (slow to start under TCG) answers
    s.sendto(b"w", ("10.77.0.2", 7777))
    try:
        s.recvfrom(64)
        break
    except socket.timeout:
        pass
while True:  # drop late answers to the warm-up probes
    try:
        s.recvfrom(64)
    except socket.timeout:
        break
s.settimeout(5)
r = []
for i in range(n):
    t = time.monotonic()
    s.sendto(b"x%d" % i, ("10.77.0.2", 7777))
    s.recvfrom(64)
    r.append((time.monotonic() - t) * 1000)
    time.sleep(0.05)
print("%.2f %.2f %.2f" % (min(r), sum(r) / len(r), max(r)))
' "$count"
	kill "$srv" 2>/dev/null || true
	wait "$srv" 2>/dev/null || true
}

echo "# kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) MB"
want="${TARDY_VM_KERNEL:-6.1}"
if [[ "$(uname -r)" == "$want".* ]]; then ok "stock $want kernel ($(uname -r))"; else bad "kernel is $(uname -r), not $want"; fi
check "cgroup2 at /sys/fs/cgroup ($(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null))" \
	test -f /sys/fs/cgroup/cgroup.controllers
check "bpffs at /sys/fs/bpf" sh -c 'grep -q " /sys/fs/bpf bpf " /proc/mounts'
check "tracefs at /sys/kernel/tracing" test -f /sys/kernel/tracing/available_events
check "BTF at /sys/kernel/btf/vmlinux" test -s /sys/kernel/btf/vmlinux
check "bpf LSM active" grep -q bpf /sys/kernel/security/lsm
check "bpftool prog list" /usr/sbin/bpftool prog list
check "python3 with shared libraries" "$PY" -c 'import ssl, ctypes; print(ssl.OPENSSL_VERSION)'
# shellcheck disable=SC2016 # expanded by the inner shell
check "TARDY_VM_OUT is writable" sh -c 'echo hi >"$TARDY_VM_OUT/selftest.txt" && rm "$TARDY_VM_OUT/selftest.txt"'
check "root file system is writable (overlay)" sh -c 'touch /etc/tardy-vm-probe && rm /etc/tardy-vm-probe'

check "netns + veth" sh -c "
	$IP netns add $NS_A && $IP netns add $NS_B &&
	$IP link add tvm0 netns $NS_A type veth peer name tvm1 netns $NS_B &&
	$IP -n $NS_A addr add 10.77.0.1/24 dev tvm0 && $IP -n $NS_B addr add 10.77.0.2/24 dev tvm1 &&
	$IP -n $NS_A link set lo up && $IP -n $NS_B link set lo up &&
	$IP -n $NS_A link set tvm0 up && $IP -n $NS_B link set tvm1 up"
check "fq as root qdisc" "$IP" netns exec "$NS_A" "$TC" qdisc add dev tvm0 root fq
check "clsact + cls_bpf available" "$IP" netns exec "$NS_A" "$TC" qdisc add dev tvm0 clsact
echo "#    baseline UDP RTT (python) min/avg/max ms: $(rtt 5)"
echo "#    baseline ICMP RTT (ping) min/avg/max ms: $(ping_rtt 3)"
"$IP" netns exec "$NS_A" "$TC" qdisc del dev tvm0 root 2>/dev/null || true
check "netem delay 20ms as root qdisc" "$IP" netns exec "$NS_A" "$TC" qdisc add dev tvm0 root netem delay 20ms
delayed="$(rtt 5)"
echo "#    netem 20ms UDP RTT (python) min/avg/max ms: $delayed"
pinged="$(ping_rtt 3)"
echo "#    netem 20ms ICMP RTT (ping) min/avg/max ms: $pinged"
[[ -z "$pinged" ]] || delayed="$pinged"
read -r dmin _ _ <<<"$delayed"
if awk -v m="$dmin" 'BEGIN{exit !(m >= 19.5 && m < 40)}'; then ok "netem delay observed (min ${dmin} ms)"; else bad "netem delay not observed (min ${dmin} ms)"; fi
for q in ifb htb tbf prio; do
	case "$q" in
	ifb) check "ifb device" "$IP" netns exec "$NS_A" "$IP" link add tvm-ifb type ifb ;;
	*)
		"$IP" netns exec "$NS_A" "$TC" qdisc del dev tvm0 root 2>/dev/null || true
		case "$q" in
		htb) check "htb qdisc" "$IP" netns exec "$NS_A" "$TC" qdisc add dev tvm0 root handle 1: htb ;;
		tbf) check "tbf qdisc" "$IP" netns exec "$NS_A" "$TC" qdisc add dev tvm0 root tbf rate 1mbit burst 32kbit latency 400ms ;;
		prio) check "prio qdisc" "$IP" netns exec "$NS_A" "$TC" qdisc add dev tvm0 root prio ;;
		esac
		;;
	esac
done

echo "${pass} passed, ${fail} failed"
((fail == 0))
