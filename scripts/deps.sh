#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what tardy needs to build, test and demo, from Debian's archive. Idempotent: it
# does nothing when everything is there.
set -euo pipefail
pkgs=(make clang llvm g++ libbpf-dev bpftool libelf-dev zlib1g-dev libmnl-dev libcli11-dev nlohmann-json3-dev
      libgtest-dev libgmock-dev iproute2 qemu-system-x86 busybox-static cpio kmod
      redis-server redis-tools iperf3 curl dnsmasq-base bind9-dnsutils python3 iputils-ping
      dpkg-dev lintian man-db
      libcpp-httplib-dev prometheus libyaml-cpp-dev libhowardhinnant-date-dev tzdata
      podman buildah runc)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing ${missing[*]}; run as root (sudo make ...) to install them" >&2
    exit 2
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # prometheus is here for promtool and for the servers the tests start on loopback; the
  # package also enables a system-wide daemon on 0.0.0.0:9090, which tardy does not want.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
    systemctl disable prometheus >/dev/null 2>&1 || true
    systemctl stop prometheus >/dev/null 2>&1 || true
  fi
fi
