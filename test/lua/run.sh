#!/usr/bin/env bash
# run.sh - the Lua library's tests: mount a private proviumfs (with the
# built-in host VM), point the library at it, and run every *.test.lua
# here through lua/provium-test (TAP). Registered with ctest as `lua`.
#
# The daemon runs in a network namespace of the test's own, so its
# captures on `lo` see only the traffic the tests make (the host VM's
# agent, its child, is in it too). Needs root for that; skipped
# otherwise (a failure under PROVIUM_REQUIRE_ALL=1).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"

command -v lua5.4 >/dev/null || skip "no lua5.4"
[ "$(id -u)" -eq 0 ] || skip "needs root (a network namespace for captures)"
command -v nsenter >/dev/null || skip "no nsenter (util-linux)"
NS=provium-lua-$$
register netns "$NS"
need "ip netns add $NS" ip netns add "$NS"
need "lo up in $NS" ip -n "$NS" link set lo up
FS_WRAP=(nsenter "--net=/run/netns/$NS")

start_fs
export PROVIUM_MOUNT=$MP
export LUA_PATH="$PROVIUM_SOURCE_DIR/lua/?.lua;;"
export LUA_CPATH="$BUILD/lua/?.so;;"
export PROVIUM_TEST_TMP=$T
cd "$here" || exit 1
if timeout 300 lua5.4 "$PROVIUM_SOURCE_DIR/lua/provium-test" "$@" . ; then
    ok "lua tests"
else
    fail "lua tests"
fi

# The daemon vanishing under an open stream: an error saying so, at once.
cat >"$T/vanish.lua" <<'LUA'
local provium = require "provium"
local t = provium.vm("host"):tail_file("/dev/null")
io.stdout:write("open\n"); io.stdout:flush()
io.stdin:read("l") -- the daemon is killed now
local ok, err = pcall(t.next, t, "30s")
print(ok, err)
LUA
coproc VANISH { timeout 20 lua5.4 "$T/vanish.lua" 2>&1; }
read_line "${VANISH[0]}" 20
check "vanish: stream opened ($LINE)" test "$LINE" = open
kill -9 "$FS_PID"
wait "$FS_PID" 2>/dev/null
FS_PID=
echo go >&"${VANISH[1]}"
read_line "${VANISH[0]}" 20
check "vanish: error names the gone mount ($LINE)" \
    grep -q "the mount at $MP is gone" <<<"$LINE"
ip netns del "$NS"
