#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the OCI image tardy:VERSION with buildah, FROM scratch (no registry is contacted):
#   /usr/bin/tardy        the binary, stripped (as the .deb ships it)
#   the shared libraries `ldd` lists for it, at the paths ldd resolved, and the dynamic loader
#   /usr/share/zoneinfo   the tz database: libdate-tz reads it for `tardy run` windows
#   /etc/localtime        -> Etc/UTC (the agent's log lines and `window.timezone` left empty)
#   /usr/bin/sleep        the idle process of the DaemonSet's `ctl` container (its libraries,
#                         libc and the loader, are tardy's too): deploy/kubernetes/
# tardy runs no other program: `ip` is the demo's only (`tardy demo` does not work in the
# image), and `tardy run` command probes need their programs mounted in.
# Usage: scripts/build-image.sh [--binary PATH] [--tag NAME:TAG] [--output oci-archive:PATH]
#   --binary  default build/tardy (of this checkout); --tag default tardy:VERSION (from
#   `tardy --version`); --output also writes the image to an archive (oci-archive:PATH or
#   docker-archive:PATH), e.g. for `ctr -n k8s.io images import` or `kind load image-archive`.
# The image stays in the local containers-storage (`podman images`). Needs buildah and root.
# Exit 2 on bad use, 1 when a step fails; errors are one line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

die() { echo "build-image.sh: $1" >&2; exit "${2:-1}"; }
usage() { die "$1; usage: scripts/build-image.sh [--binary PATH] [--tag NAME:TAG] [--output oci-archive:PATH]" 2; }

binary=$top/build/tardy tag='' output=''
while (($#)); do
  case $1 in
    --binary | --tag | --output)
      (($# >= 2)) && [[ -n $2 && $2 != --* ]] || usage "$1 needs a value"
      case $1 in --binary) binary=$2 ;; --tag) tag=$2 ;; --output) output=$2 ;; esac
      shift 2 ;;
    -h | --help) sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage "unknown argument '$1'" ;;
  esac
done
[[ -f $binary && -x $binary ]] || usage "--binary $binary: no such executable; build it first (make)"
case $output in
  '') ;;
  oci-archive:?* | docker-archive:?*) ;;
  *) usage "--output '$output': use oci-archive:PATH or docker-archive:PATH" ;;
esac
# NAME[:TAG], NAME in lower case and maybe REGISTRY[:PORT]/ before it; buildah judges the rest.
ref_re='^[a-z0-9][a-z0-9._/-]*(:[0-9]+/[a-z0-9][a-z0-9._/-]*)?(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$'
if [[ -n $tag ]] && ! [[ $tag =~ $ref_re ]]; then
  usage "--tag '$tag': use NAME:TAG, the name in lower case, e.g. tardy:0.1.0 or registry.example:5000/tardy:0.1.0"
fi
((EUID == 0)) || usage "needs root (buildah's storage, chroot): run it with sudo"
command -v buildah >/dev/null || die "buildah is not installed; apt-get install buildah"
command -v ldd >/dev/null || die "ldd is not installed; apt-get install libc-bin"
version=$("$binary" --version 2>/dev/null | sed -n 's/^tardy \([0-9][0-9A-Za-z.~+-]*\)$/\1/p') || true
[[ -n $version ]] || die "$binary --version did not print 'tardy VERSION'; is it tardy?"
tag=${tag:-tardy:$version}
[[ ${tag##*/} == *:* ]] || tag=$tag:$version  # NAME alone: NAME:VERSION
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}
revision=$(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)

work=$(mktemp -d "${TMPDIR:-/tmp}/tardy-image.XXXXXX")
ctr=''
cleanup() {
  [[ -z $ctr ]] || buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# buildah, with its error (if any) as the one line this script prints.
bah() {
  local out
  out=$(buildah "$@" 2>"$work/buildah.err") ||
    die "buildah $1 failed: $(grep -v '^$' "$work/buildah.err" | tail -n 1)"
  [[ -z $out ]] || printf '%s\n' "$out"
}
root=$work/root
mkdir -p "$root/usr/bin" "$root/etc" "$root/usr/share"

# The libraries of every program in the image, at the paths ldd resolved (glibc's loader
# searches /lib/x86_64-linux-gnu without an ld.so.cache), and the loader at its PT_INTERP path.
sleep_bin=$(command -v sleep) || die "no sleep program on this host; apt-get install coreutils"
libs() {
  local out
  out=$(ldd "$1" 2>&1) || die "ldd $1 failed: $(head -n 1 <<<"$out")"
  if grep -q 'not found' <<<"$out"; then die "ldd $1: $(grep -m1 'not found' <<<"$out" | xargs)"; fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}
tardy_libs=$(libs "$binary")
sleep_libs=$(libs "$sleep_bin")
for lib in $(printf '%s\n' $tardy_libs $sleep_libs | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp -L "$binary" "$root/usr/bin/tardy"
if command -v strip >/dev/null; then
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/tardy"
fi
cp -L "$sleep_bin" "$root/usr/bin/sleep"
[[ -d /usr/share/zoneinfo ]] || die "no /usr/share/zoneinfo on this host; apt-get install tzdata"
cp -a /usr/share/zoneinfo "$root/usr/share/zoneinfo"
ln -s /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
# The check the image must pass: the binary starts with nothing but what is in it.
chroot "$root" /usr/bin/tardy --version >/dev/null 2>&1 ||
  die "the staged image cannot run tardy (chroot $root /usr/bin/tardy --version failed); a library is missing?"

# One layer, dated at the sources' date, owned by root.
find "$root" -newermt "@$epoch" -exec touch -h -d "@$epoch" {} +
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime="@$epoch" -C "$root" -cf "$work/root.tar" .
ctr=$(bah from scratch)
bah add --quiet "$ctr" "$work/root.tar" / >/dev/null
bah config \
  --entrypoint '["/usr/bin/tardy"]' --cmd agent --env PATH=/usr/bin --workingdir / \
  --label org.opencontainers.image.title=tardy \
  --label org.opencontainers.image.description="eBPF latency and fault injection for cgroups, containers and pods" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$revision" \
  --label "org.opencontainers.image.licenses=Apache-2.0 AND (GPL-2.0-only OR BSD-2-Clause)" \
  "$ctr"
bah commit --quiet --rm --timestamp "$epoch" "$ctr" "$tag" >/dev/null
ctr=''
if [[ -n $output ]]; then
  dest=${output#*:}
  mkdir -p "$(dirname "$dest")"
  rm -f "$dest"
  bah push --quiet "$tag" "${output%%:*}:$dest:$tag" >/dev/null
  echo "$tag $dest"
else
  echo "$tag"
fi
