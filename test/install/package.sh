#!/usr/bin/env bash
# package.sh - the Debian package (docs/install.md): `cpack -G DEB` from
# the build tree; its file list and declared dependencies; then, as root,
# `apt-get install ./provium_*.deb` for real: the installed daemon, agent,
# CLI, library, man pages and unit work from /usr, and `apt-get remove`
# takes every file away again. Not root: the install part cannot run and
# the test reports skipped (77) after the rest passed.
. "$(dirname "$0")/lib.sh"

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
arch=$(dpkg --print-architecture)
cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$T/pkg" >"$T/cpack.log" 2>&1 ||
    { cat "$T/cpack.log" >&2; exit 1; }
deb=$T/pkg/provium_${version}_$arch.deb
check "cpack wrote ${deb##*/}" test -f "$deb"
[ -f "$deb" ] || exit 1

# ---- contents -------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort >"$T/files"
expected=(
    /usr/bin/proviumfs /usr/bin/provium /usr/bin/provium-vm /usr/bin/provium-test
    /usr/libexec/provium/provium-agent
    /usr/share/lua/5.4/provium.lua /usr/lib/lua/5.4/provium/core.so
    /usr/share/man/man8/proviumfs.8 /usr/share/man/man8/provium-agent.8
    /usr/share/man/man1/provium.1 /usr/share/man/man1/provium-vm.1
    /usr/share/man/man1/provium-test.1 /usr/share/man/man7/provium-lua.7
    /usr/lib/systemd/system/proviumfs.service
    /usr/share/bash-completion/completions/proviumfs
    /usr/share/bash-completion/completions/provium
    /usr/share/bash-completion/completions/provium-vm
    /usr/share/doc/provium/README.md /usr/share/doc/provium/spec.md
)
for f in "${expected[@]}"; do
    check "package holds $f" grep -qx "$f" "$T/files"
done
extra=$(grep -vxF -f <(printf '%s\n' "${expected[@]}") "$T/files" |
    grep -v '^/usr/share/doc/provium/[a-z]*\.md$')
check "package holds nothing else${extra:+: $extra}" test -z "$extra"
check "executables are executable" eval \
    '[ "$(dpkg-deb -c "$deb" | grep -cE "^-rwxr-xr-x .*/usr/(bin|libexec/provium)/")" = 5 ]'
check "the unit runs /usr/bin/proviumfs" eval \
    'dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/proviumfs.service |
     grep -qx "ExecStart=/usr/bin/proviumfs -f --spool-dir /var/tmp /run/provium"'

# ---- control -------------------------------------------------------------------
check "Package: provium" test "$(dpkg-deb -f "$deb" Package)" = provium
check "Version: $version" test "$(dpkg-deb -f "$deb" Version)" = "$version"
deps=$(dpkg-deb -f "$deb" Depends)
for d in libc6 libfuse3-3 libpcap0.8 fuse3 lua5.4 lua-dkjson; do
    check "Depends on $d ($deps)" grep -qE "(^|, )$d( |,|$)" <<<"$deps"
done
check "Recommends bash-completion" eval '[ "$(dpkg-deb -f "$deb" Recommends)" = bash-completion ]'
check "a prerm that stops the service" eval \
    'dpkg-deb -I "$deb" prerm | grep -q "systemctl stop proviumfs.service"'

# ---- installed for real -------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "not root (or no apt-get): the package is not installed for real"
    exit 77
fi
if dpkg-query -W -f='${Status}' provium 2>/dev/null | grep -q "ok installed"; then
    fail "a provium package is installed already: not touching it"
    exit 1
fi
CLEANUP+=("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q provium >/dev/null 2>&1")
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" \
    >"$T/apt.log" 2>&1
rc=$?
check "apt-get install ./${deb##*/} (rc $rc)" test $rc = 0
[ $rc = 0 ] || { cat "$T/apt.log" >&2; exit 1; }
check "dpkg: installed" eval 'dpkg-query -W -f="\${Status}" provium | grep -q "ok installed"'

unset LUA_PATH LUA_CPATH PROVIUM_AGENT
MP=$T/mnt
start_fs /usr/bin/proviumfs "$MP" || exit 1
check "the installed daemon uses /usr/libexec's agent" wait_for 10 eval \
    'grep -qx "agent: spawn:/usr/libexec/provium/provium-agent" "$MP/vms/host/info" &&
     grep -qx "agent_state: up" "$MP/vms/host/info"'
export PROVIUM_MOUNT=$MP
printf 'from the package\n' >"$T/pkg.log"
id=$(/usr/bin/provium open host tail_file "$T/pkg.log" start=beginning)
check "the installed CLI serves a stream ($id)" eval \
    '[ "$(timeout 5 /usr/bin/provium follow "$id" | head -c 16)" = "from the package" ]'
check "the installed library loads from the default Lua paths" \
    lua5.4 -e "local p = require 'provium'; assert(p.VERSION == '$version')
               assert(p.stream_info($id).kind == 'tail_file')"
check "provium --json works (lua-dkjson installed as a dependency)" eval \
    '/usr/bin/provium ls --json | jq -e "length == 1" >/dev/null'
/usr/bin/provium close "$id"
check "the installed daemon unmounts on SIGTERM" stop_fs "$FS_PID" "$MP"
check "man finds the pages" eval 'man -w proviumfs >/dev/null && man -w 7 provium-lua >/dev/null'
if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify the installed unit" \
        systemd-analyze verify /usr/lib/systemd/system/proviumfs.service
fi

DEBIAN_FRONTEND=noninteractive apt-get purge -y -q provium >"$T/remove.log" 2>&1
check "apt-get purge provium" test $? = 0
for f in "${expected[@]}"; do
    [ -e "$f" ] && fail "left after remove: $f"
done
check "removed: not installed" eval '! dpkg-query -W -f="\${Status}" provium 2>/dev/null | grep -q "ok installed"'
