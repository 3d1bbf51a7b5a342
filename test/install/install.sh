#!/usr/bin/env bash
# install.sh - `cmake --install` installs the whole product (SPEC §10):
# the expected tree under DESTDIR for an install-time --prefix; the
# installed daemon finds its installed agent there (no PROVIUM_AGENT, no
# build tree) and serves a stream that the installed CLI and the
# installed Lua library open and read; every program and the library
# report the project's version; the man pages render without warnings;
# the unit generated for a real prefix passes `systemd-analyze verify`;
# the installed bash completion completes stream ids.
. "$(dirname "$0")/lib.sh"

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
check "project version known ($version)" test -n "$version"

# ---- the tree, DESTDIR and an install-time prefix --------------------
PREFIX=/opt/provium-$$
D=$T/dest
DESTDIR=$D cmake --install "$BUILD" --prefix "$PREFIX" >"$T/install.log" 2>&1 ||
    { cat "$T/install.log" >&2; exit 1; }
R=$D$PREFIX
expected=(
    bin/proviumfs bin/provium bin/provium-vm bin/provium-test
    libexec/provium/provium-agent
    share/lua/5.4/provium.lua lib/lua/5.4/provium/core.so
    share/man/man8/proviumfs.8 share/man/man8/provium-agent.8
    share/man/man1/provium.1 share/man/man1/provium-vm.1
    share/man/man1/provium-test.1 share/man/man7/provium-lua.7
    lib/systemd/system/proviumfs.service
    share/bash-completion/completions/proviumfs
    share/bash-completion/completions/provium
    share/bash-completion/completions/provium-vm
    share/doc/provium/README.md share/doc/provium/spec.md
    share/doc/provium/install.md share/doc/provium/lua.md
)
for f in "${expected[@]}"; do
    check "installed: $f" test -f "$R/$f"
done
for f in bin/proviumfs bin/provium bin/provium-vm bin/provium-test \
    libexec/provium/provium-agent; do
    check "executable: $f" test -x "$R/$f"
done
( cd "$R" && find . -type f | sed 's|^\./||' | sort ) >"$T/tree"
extra=$(grep -vxF -f <(printf '%s\n' "${expected[@]}") "$T/tree" |
    grep -v '^share/doc/provium/[a-z]*\.md$')
check "nothing else installed${extra:+: $extra}" test -z "$extra"
check "nothing outside the prefix" test "$(ls -A "$D")" = opt
check "unit: ExecStart is the install-time prefix's proviumfs" \
    grep -qx "ExecStart=$PREFIX/bin/proviumfs -f --spool-dir /var/tmp /run/provium" \
    "$R/lib/systemd/system/proviumfs.service"
check "unit: no @VARIABLE@ left" eval '! grep -q "@[A-Z_0-9]*@" "$R/lib/systemd/system/proviumfs.service"'

# ---- the installed daemon, agent, CLI and library --------------------
# Nothing from the build tree: no PROVIUM_AGENT, no LUA_PATH/LUA_CPATH.
unset LUA_PATH LUA_CPATH PROVIUM_AGENT
MP=$T/mnt
start_fs "$R/bin/proviumfs" "$MP" || exit 1
check "installed daemon: host agent up" wait_for 10 grep -q "^agent_state: up" "$MP/vms/host/info"
check "installed daemon: uses the installed agent" \
    grep -qx "agent: spawn:$R/libexec/provium/provium-agent" "$MP/vms/host/info"
check "installed daemon: version $version" grep -qx "proviumfs $version" "$MP/ctl"
check "installed agent: version $version" grep -qx "agent_version: $version" "$MP/vms/host/info"
export PROVIUM_MOUNT=$MP
printf 'line one\n' >"$T/watched.log"
id=$("$R/bin/provium" open host tail_file "$T/watched.log" start=beginning)
check "installed CLI opens a stream ($id)" eval '[[ "$id" =~ ^[0-9]+$ ]]'
printf 'line two\n' >>"$T/watched.log"
check "the stream serves both lines" wait_for 10 eval \
    '[ "$(head -c 18 "$MP/streams/$id/log")" = "$(printf "line one\nline two")" ]'
check "installed CLI: follow" eval \
    '[ "$(timeout 5 "$R/bin/provium" follow "$id" | head -c 8)" = "line one" ]'
check "installed CLI: --version $version" eval '"$R/bin/provium" --version | grep -q "^provium $version "'
cat >"$T/inst.test.lua" <<LUA
local provium = require "provium"
assert(provium.VERSION == "$version", "library version " .. provium.VERSION)
provium.test("the installed library reads a stream", function()
  local t <close> = provium.vm("host"):tail_file("$T/watched.log", {start = "beginning"})
  assert(t:read_until("two", "5s") == "line one\nline two")
end)
LUA
check "installed provium-test runs a test with the installed library" eval \
    '"$R/bin/provium-test" "$T/inst.test.lua" >"$T/tap" 2>&1 && grep -q "^ok 1 " "$T/tap"'
"$R/bin/provium" close "$id"
check "SIGTERM unmounts the installed daemon" stop_fs "$FS_PID" "$MP"

# ---- version: one for everything ------------------------------------
check "proviumfs --version: $version" eval '"$R/bin/proviumfs" --version | grep -qx "proviumfs $version"'
check "rockspec: $version" test -f "$SRC/lua/provium-${version%.*}.${version##*.}-1.rockspec" -o \
    -f "$SRC/lua/provium-$version-1.rockspec"

# ---- man pages -------------------------------------------------------
for page in "$R"/share/man/man*/*; do
    out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >"$T/page.txt")
    check "man ${page##*/}: renders without warnings${out:+: $out}" test -z "$out"
    check "man ${page##*/}: has NAME, SYNOPSIS or DESCRIPTION" \
        grep -q "^DESCRIPTION\|^SYNOPSIS" "$T/page.txt"
done

# ---- the systemd unit, for a real prefix ------------------------------
P2=$T/prefix
cmake --install "$BUILD" --prefix "$P2" >"$T/install2.log" 2>&1 || fail "install to $P2"
if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify: the installed unit" eval \
        'MANPATH=$P2/share/man systemd-analyze verify "$P2/lib/systemd/system/proviumfs.service" 2>"$T/verify.err" ||
         { cat "$T/verify.err" >&2; false; }'
else
    fail "systemd-analyze is missing (Debian package systemd)"
fi

# ---- bash completion ---------------------------------------------------
if [ -f /usr/share/bash-completion/bash_completion ]; then
    MP=$T/mnt2
    start_fs "$R/bin/proviumfs" "$MP" || exit 1
    export PROVIUM_MOUNT=$MP
    id=$("$R/bin/provium" open host tail_file "$T/watched.log")
    got=$(bash -c '
        . /usr/share/bash-completion/bash_completion
        . "$1"
        COMP_WORDS=(provium info ""); COMP_CWORD=2; COMP_LINE="provium info "
        COMP_POINT=${#COMP_LINE}
        _provium provium "" info
        printf "%s\n" "${COMPREPLY[@]}"
        COMP_WORDS=(provium run ""); COMP_CWORD=2; COMP_LINE="provium run "
        COMP_POINT=${#COMP_LINE}
        _provium provium "" run
        printf "%s\n" "${COMPREPLY[@]}"
        COMP_WORDS=(proviumfs --hi); COMP_CWORD=1; COMP_LINE="proviumfs --hi"
        COMP_POINT=${#COMP_LINE}
        _proviumfs proviumfs --hi proviumfs
        printf "%s\n" "${COMPREPLY[@]}"
    ' _ "$R/share/bash-completion/completions/provium" 2>&1)
    check "completion: provium info <TAB> offers stream $id" grep -qx "$id" <<<"$got"
    check "completion: provium run <TAB> offers the host VM" grep -qx host <<<"$got"
    check "completion: proviumfs --hi<TAB> is --history-limit" grep -qx -- --history-limit <<<"$got"
    "$R/bin/provium" close "$id"
else
    fail "bash-completion is not installed"
fi
