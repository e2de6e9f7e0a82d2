#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds BUILD/tardy_VERSION_amd64.deb from an installed tree: `make install` into a staging
# root with Debian's paths, then the package's own files (copyright, changelog, control with
# Depends computed by dpkg-shlibdeps from the binary's libraries), then dpkg-deb.
# Usage (from the Makefile): packaging/build-deb.sh BUILD VERSION
set -euo pipefail
build_arg=${1:?usage: build-deb.sh BUILD VERSION}
build=$(realpath -m "$build_arg")
version=${2:?usage: build-deb.sh BUILD VERSION}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
maintainer=${TARDY_MAINTAINER:-$(git -C "$top" log -1 --format='%an <%ae>' 2>/dev/null || echo "tardy maintainers <tardy@localhost>")}
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$epoch
work=$build/deb
root=$work/root
deb=$build/tardy_${version}_amd64.deb
rm -rf "$work"
mkdir -p "$root/DEBIAN"

# Debian's paths: /usr, the unit under /lib/systemd/system (bookworm's systemd and lintian).
make -s -C "$top" --no-print-directory install BUILD="$build" DESTDIR="$(cd "$root" && pwd)" PREFIX=/usr \
  UNITDIR=/lib/systemd/system >/dev/null
doc=$root/usr/share/doc/tardy
# The licenses are in copyright, as Debian wants them.
rm -rf "$doc/LICENSE" "$doc/LICENSES"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/tardy"
gzip -9n "$root/usr/share/man/man1/tardy.1"
bsd=$(sed -e 's/^$/./' -e 's/^/ /' "$top/LICENSES/BSD-2-Clause.txt")
awk -v m="$maintainer" -v b="$bsd" '{gsub(/@MAINTAINER@/, m); if ($0 == "@BSD@") print b; else print}' \
  "$here/copyright.in" >"$doc/copyright"
sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" \
  -e "s/@DATE@/$(date -u -R -d "@$epoch")/" "$here/changelog.in" | gzip -9n >"$doc/changelog.gz"

# Depends from the libraries the binary links (dpkg-shlibdeps wants a debian/control).
shl=$work/shlibs
mkdir -p "$shl/debian"
printf 'Source: tardy\n\nPackage: tardy\nArchitecture: amd64\n' >"$shl/debian/control"
depends=$(cd "$shl" && dpkg-shlibdeps -O -e"$root/usr/bin/tardy" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "build-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# libdate-tz reads the system's tz database (experiment windows), which no library links.
depends="$depends, tzdata"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" -e "s/@SIZE@/$size/" \
  -e "s/@DEPENDS@/$depends/" "$here/control.in" >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
# Reproducible: every file dated at the sources' date, modes as Debian wants them.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -newermt "@$epoch" -exec touch -h -d "@$epoch" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$build_arg/tardy_${version}_amd64.deb"
