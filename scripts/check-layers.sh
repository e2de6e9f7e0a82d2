#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The dependency rule of user/ (docs/design.md, "Layout"): a layer includes only its own and
# lower layers, always by layer-qualified path ("sys/netns.hpp"); generated skeletons and
# include/tardy/ are open to all. Prints each violation; exits 1 if there is any.
set -uo pipefail
cd "$(dirname "$0")/.."
order=(model sys loader agent lab experiment cli)
rank() { local i; for i in "${!order[@]}"; do [[ ${order[$i]} == "$1" ]] && { echo "$i"; return; }; done; echo -1; }
bad=0
for dir in user/*/; do
    layer=$(basename "$dir")
    me=$(rank "$layer")
    if ((me < 0)); then echo "layers: user/$layer is not a known layer (${order[*]})"; bad=1; continue; fi
    for f in "$dir"*; do
        while IFS= read -r inc; do
            case $inc in
                *.skel.h|tardy/*) continue ;;
                */*) ;;
                *) echo "layers: $f includes \"$inc\": name it by its layer (e.g. \"sys/$inc\")"; bad=1; continue ;;
            esac
            other=$(rank "${inc%%/*}")
            if ((other < 0)); then echo "layers: $f includes \"$inc\": no such layer"; bad=1
            elif ((other > me)); then echo "layers: $f ($layer) includes \"$inc\" (${inc%%/*}), a higher layer"; bad=1
            fi
        done < <(grep -oP '^#include "\K[^"]+' "$f")
    done
done
exit $bad
