#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The install story end to end (issue 14): `make install`/`uninstall` into a scratch DESTDIR,
# `make deb`, lintian on the package, and a real `apt-get install ./tardy_*.deb` followed by
# `apt-get remove`/purge, checking the files each step leaves. Ends with one line,
# "deb_test: N passed, N failed, N skipped", which scripts/run-tests.sh adds to its totals.
# Usage: tests/package/deb_test.sh [BUILD]   (needs root for the apt-get steps; about 20 s)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
BUILD=${1:-${BUILD:-build}}
passed=0 failed=0 skipped=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
skip() {
  # In CI a step that cannot run is a failure, never a skip (docs/testing.md).
  if [[ ${CI:-} == true ]]; then bad "$1 (cannot run: $2)"; else echo "skip $1: $2"; skipped=$((skipped + 1)); fi
}
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

scratch=$(mktemp -d /tmp/tardy-deb-test.XXXXXX)
we_installed=0
cleanup() {
  if ((we_installed)); then
    dpkg --purge tardy >/dev/null 2>&1 || echo "cleanup: dpkg --purge tardy failed" >&2
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The files an installation holds, below a prefix ($1) and doc dir ($2).
expected_files() {
  local p=$1 unit=$2 doc=$3
  echo "$p/bin/tardy" "$p/share/man/man1/tardy.1" "$p/share/bash-completion/completions/tardy" "$unit/tardy.service"
  echo "$doc/README.md"
  for f in docs/*.md; do echo "$doc/$f"; done
}

# ---- make install / uninstall --------------------------------------------------------------
dest=$scratch/destdir
if make -s --no-print-directory BUILD="$BUILD" install DESTDIR="$dest" >"$scratch/install.log" 2>&1; then
  ok "make install DESTDIR"
  missing=0
  for f in $(expected_files /usr/local /usr/local/lib/systemd/system /usr/local/share/doc/tardy); do
    [[ -f $dest$f ]] || { echo "  missing $dest$f"; missing=1; }
  done
  check "make install puts binary, man page, completion, unit and docs in place" test $missing -eq 0
  check "installed unit runs the installed binary" grep -qx 'ExecStart=/usr/local/bin/tardy agent $TARDY_AGENT_ARGS' \
    "$dest/usr/local/lib/systemd/system/tardy.service"
  check "installed binary runs" "$dest/usr/local/bin/tardy" --version
  check "bash completion parses" bash -n "$dest/usr/local/share/bash-completion/completions/tardy"
  make -s --no-print-directory BUILD="$BUILD" uninstall DESTDIR="$dest" >>"$scratch/install.log" 2>&1
  left=$(find "$dest" -type f | sed "s|^$dest||")
  check "make uninstall removes every file it installed" test -z "$left"
  [[ -z $left ]] || echo "  left: $left"
else
  bad "make install DESTDIR"; sed 's/^/  /' "$scratch/install.log" | tail -20
fi

# ---- the man page is the CLI's help --------------------------------------------------------
man_txt=$(MANWIDTH=200 man -l "$BUILD/tardy.1" 2>"$scratch/man.err")
check "man page renders without warnings" test ! -s "$scratch/man.err"
drift=0
for c in inject list stop kill doctor agent demo; do
  for o in $("$BUILD/tardy" "$c" --help | grep -oE '^  --[a-z][a-z-]*'); do
    grep -qF -- "$o" <<<"$man_txt" || { echo "  man page lacks $c $o"; drift=1; }
  done
done
check "man page lists every option of every command" test $drift -eq 0

# ---- make deb, lintian ------------------------------------------------------------------------
rm -f "$BUILD"/tardy_*_amd64.deb
if deb=$(make -s --no-print-directory BUILD="$BUILD" deb 2>"$scratch/deb.err" | tail -1) && [[ -f $deb ]]; then
  ok "make deb builds $(basename "$deb")"
else
  bad "make deb"; sed 's/^/  /' "$scratch/deb.err" | tail -20
  deb=
fi
if [[ -n $deb ]]; then
  depends=$(dpkg-deb -f "$deb" Depends)
  echo "  Depends: $depends"
  check "Depends names libbpf1, libmnl0, libstdc++6 and libc6" \
    bash -c '[[ $0 == *libbpf1* && $0 == *libmnl0* && $0 == *libstdc++6* && $0 == *libc6* ]]' "$depends"
  if command -v lintian >/dev/null; then
    # As an unprivileged user: lintian warns when it runs as root.
    lint_as=(); [[ $(id -u) -eq 0 ]] && lint_as=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$scratch")
    chmod 0755 "$scratch"
    "${lint_as[@]}" lintian --tag-display-limit 0 "$deb" >"$scratch/lintian.log" 2>&1
    sed 's/^/  lintian: /' "$scratch/lintian.log"
    check "lintian: no error or warning" bash -c '! grep -qE "^[EW]: " "$0"' "$scratch/lintian.log"
  else
    skip "lintian" "lintian is not installed (scripts/deps.sh installs it)"
  fi
fi

# ---- apt-get install, remove, purge -----------------------------------------------------------
if [[ -z $deb ]]; then
  skip "apt-get install/remove" "no package was built"
elif [[ $(id -u) -ne 0 ]]; then
  skip "apt-get install/remove" "needs root"
elif dpkg-query -W -f='${Status}' tardy 2>/dev/null | grep -q installed; then
  skip "apt-get install/remove" "a tardy package is already installed on this machine; left alone"
else
  abs=$(realpath "$deb")
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$abs" \
      >"$scratch/apt.log" 2>&1; then
    we_installed=1
    ok "apt-get install ./$(basename "$deb")"
  else
    bad "apt-get install ./$(basename "$deb")"; tail -20 "$scratch/apt.log" | sed 's/^/  /'
  fi
  if ((we_installed)); then
    missing=0
    for f in $(expected_files /usr /lib/systemd/system /usr/share/doc/tardy) /usr/share/doc/tardy/copyright \
        /usr/share/doc/tardy/changelog.gz; do
      f=${f/%tardy.1/tardy.1.gz}
      dpkg -L tardy | grep -qx "$f" && [[ -f $f ]] || { echo "  missing $f"; missing=1; }
    done
    check "package installs binary, man page, completion, unit, docs, copyright" test $missing -eq 0
    check "installed tardy runs" /usr/bin/tardy --version
    check "man finds tardy(1)" man -w tardy
    if command -v systemd-analyze >/dev/null; then
      check "systemd-analyze verify tardy.service" bash -c \
        'out=$(systemd-analyze verify --man=no /lib/systemd/system/tardy.service 2>&1); [[ -z $out ]] || { echo "$out"; false; }'
    fi
    dpkg -L tardy | while read -r f; do [[ -f $f ]] && echo "$f"; done >"$scratch/files"
    if DEBIAN_FRONTEND=noninteractive apt-get remove -y -q tardy >>"$scratch/apt.log" 2>&1; then
      ok "apt-get remove tardy"
    else
      bad "apt-get remove tardy"; tail -20 "$scratch/apt.log" | sed 's/^/  /'
    fi
    left=$(while read -r f; do [[ -e $f ]] && echo "$f"; done <"$scratch/files")
    check "remove leaves none of the package's files" test -z "$left"
    [[ -z $left ]] || echo "  left: $left"
    dpkg --purge tardy >>"$scratch/apt.log" 2>&1
    check "purged: dpkg knows no tardy" bash -c '! dpkg-query -W tardy >/dev/null 2>&1'
    we_installed=0
  fi
fi

echo "deb_test: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
