#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every source file names its license in an SPDX line within its first three lines (LICENSE
# says which applies where). Generated kernel headers (vmlinux/<arch>/vmlinux.h) are the
# kernel's and exempt. Prints each file without one; exits 1 if there is any.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r f; do
    case $f in vmlinux/*/vmlinux.h) continue ;; esac
    if ! head -n 3 "$f" | grep -q 'SPDX-License-Identifier: '; then
        echo "spdx: $f has no SPDX-License-Identifier line"
        bad=1
    fi
done < <(git ls-files -- '*.c' '*.h' '*.cpp' '*.hpp' '*.sh' '*.yaml' '*.yml' Makefile .ci/run 2>/dev/null || find bpf include user tests scripts vmlinux -type f \( -name '*.[ch]' -o -name '*.[ch]pp' -o -name '*.sh' \))
exit $bad
