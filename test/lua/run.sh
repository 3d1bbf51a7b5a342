#!/usr/bin/env bash
# run.sh - the Lua library's tests: mount a private proviumfs (with the
# built-in host VM), point the library at it, and run every *.test.lua
# here through lua/provium-test (TAP). Registered with ctest as `lua`.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"

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
