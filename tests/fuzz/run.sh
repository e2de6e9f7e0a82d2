#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer target (tests/fuzz/*.cpp; tardy_fuzz.cpp dispatches to the targets)
# against the library sources and runs it.
#
#   tests/fuzz/run.sh [SECONDS] [libFuzzer args...]     (default 60 seconds)
#
# Seeds come from tests/fuzz/corpus/ (read only); what the run finds goes to build/fuzz/corpus/,
# crashes to build/fuzz/crash-*. Reproduce one with: build/fuzz/tardy_fuzz build/fuzz/crash-...
# TARDY_FUZZ_LENIENT=1 skips the checks for bugs already reported (see tardy_fuzz.cpp).
# Needs clang with libFuzzer, libbpf, libmnl, libelf, zlib, and build/tc.skel.h (made by make).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
secs=${1:-60}
shift || true
out=build/fuzz
bin=$out/tardy_fuzz
CLANGXX=${CLANGXX:-clang++}

# The minimal set that links: journal.cpp undoes entries through netns, tc_object and qdisc;
# spec.cpp parses socket faults and stalls (stall_object.cpp names syscalls, reading pins through
# pinned.cpp); request.cpp checks agent requests with both.
srcs=(user/model/units.cpp user/model/spec.cpp user/sys/qdisc.cpp user/sys/journal.cpp user/sys/journal_undo.cpp user/sys/cgroup.cpp
      user/sys/netns.cpp user/sys/tc_filter.cpp user/loader/tc_object.cpp user/model/sock_faults.cpp
      user/loader/stall_object.cpp user/loader/pinned.cpp user/model/request.cpp user/model/request_line.cpp user/model/syscalls.cpp
      user/model/filter.cpp user/model/wire.cpp user/loader/cgroup_link.cpp user/model/net_shape.cpp
      user/model/request_fields.cpp user/model/request_net.cpp user/sys/ifb.cpp user/sys/offload.cpp)

[[ -f build/tc.skel.h ]] || make --no-print-directory build/tc.skel.h
mkdir -p "$out/corpus"
fuzz_srcs=(tests/fuzz/*.cpp)
newest=$(ls -t tests/fuzz/*.cpp tests/fuzz/*.hpp "${srcs[@]}" user/*/*.hpp include/tardy/abi.h build/tc.skel.h build/stall.skel.h | head -1)
if [[ ! -x $bin || $newest -nt $bin ]]; then
    echo "  FUZZ    $bin"
    "$CLANGXX" -std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -Wall -Wextra -Iuser -Iinclude -Ibuild \
        "${fuzz_srcs[@]}" "${srcs[@]}" -lbpf -lmnl -lelf -lz -pthread -o "$bin"
fi

# Scratch journals live here (tmpfs when possible: record() fsyncs); gone when we are.
scratch=$(mktemp -d "$( [[ -w /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}" )/tardy-fuzz-run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TARDY_FUZZ_TMP=$scratch

echo "  RUN     $bin for ${secs}s"
"$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/" "$@" "$out/corpus" tests/fuzz/corpus
