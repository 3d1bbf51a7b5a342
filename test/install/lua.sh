#!/usr/bin/env bash
# lua.sh - the Lua library's ecosystem: luacheck clean (Debian lua-check);
# LuaLS annotations on every public function; the rockspec builds the
# library with luarocks and the rock loads; provium-test's TAP parsed by
# `prove` (the documented invocation: prove picks only *.t files unless
# --ext says otherwise), failures included; a busted spec run with Lua 5.4.
. "$(dirname "$0")/lib.sh"
cd "$SRC" || exit 1

# ---- luacheck ----------------------------------------------------------
check "luacheck: library, runner, CLI, spec clean" \
    luacheck --no-color --codes lua/provium.lua lua/provium-test contrib/provium \
    test/install/provium_spec.lua test/install/library.test.lua

# ---- annotations: a ---@ block right above every public function ---------
missing=$(awk '
    /^---/ { doc = 1; next }
    /^function [A-Za-z.:_]+\(/ {
        name = $2; sub(/\(.*/, "", name)
        if (!doc && name !~ /[:.]__/) print FILENAME ":" FNR ": " name
    }
    { doc = 0 }' lua/provium.lua)
check "every public function is annotated${missing:+: $missing}" test -z "$missing"
check "annotations: classes, params and returns" eval \
    '[ "$(grep -c "^---@class" lua/provium.lua)" -ge 10 ] &&
     [ "$(grep -c "^---@param" lua/provium.lua)" -ge 30 ] &&
     [ "$(grep -c "^---@return" lua/provium.lua)" -ge 30 ]'

# ---- the rockspec -----------------------------------------------------------
spec=$(ls lua/provium-*.rockspec)
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
check "rockspec named for the version ($spec, $version)" test "$spec" = "lua/provium-$version-1.rockspec"
check "luarocks lint" luarocks --lua-version 5.4 lint "$spec"
mkdir -p "$T/rocksrc" && cp -r "$SRC/lua" "$T/rocksrc/lua" && cp "$spec" "$T/rocksrc/"
check "luarocks make builds and installs the rock" eval \
    '(cd "$T/rocksrc" && luarocks --lua-version 5.4 --tree "$T/rocks" make "${spec##*/}") >"$T/rock.log" 2>&1 ||
     { cat "$T/rock.log" >&2; false; }'
check "the rock holds the two modules and the runner" eval \
    'test -f "$T/rocks/share/lua/5.4/provium.lua" && test -f "$T/rocks/lib/lua/5.4/provium/core.so" &&
     test -x "$T/rocks/bin/provium-test"'
check "the rock loads" env LUA_PATH="$T/rocks/share/lua/5.4/?.lua;;" \
    LUA_CPATH="$T/rocks/lib/lua/5.4/?.so;;" lua5.4 -e \
    "local p = require 'provium'; assert(p.VERSION == '$version'); assert(require('provium.core').now() > 0)"

# ---- prove on provium-test's TAP -----------------------------------------------
MP=$T/mnt
start_fs "$FS_BIN" "$MP" --agent "$AGENT_BIN" || exit 1
export PROVIUM_MOUNT=$MP
mkdir -p "$T/tests/sub"
cat >"$T/tests/pass.test.lua" <<'LUA'
local provium = require "provium"
provium.test("a process # with a hash in its name", function()
  assert(provium.vm("host"):run({ "true" }).code == 0)
end)
provium.test("a tail", function()
  local t <close> = provium.vm("host"):tail_file("/etc/hostname", { start = "beginning" })
  assert(t:next("5s"))
end)
LUA
cat >"$T/tests/sub/more.test.lua" <<'LUA'
require("provium").test("in a subdirectory", function() end)
LUA
cat >"$T/tests/helper.lua" <<'LUA'
error("not a test file: prove must not run it")
LUA
prove --ext .test.lua -r -e "$SRC/lua/provium-test" "$T/tests" >"$T/prove.out" 2>&1
rc=$?
check "prove --ext .test.lua -r -e provium-test: passes (rc $rc)" test $rc = 0
check "prove: 2 files, 3 tests" grep -q "Files=2, Tests=3" "$T/prove.out"
check "prove: Result: PASS" grep -qx "Result: PASS" "$T/prove.out"
cat >"$T/tests/fail.test.lua" <<'LUA'
local provium = require "provium"
provium.test("an expectation that fails", function()
  local t <close> = provium.vm("host"):tail_file("/etc/hostname")
  t:expect("never\nthere", "100ms")
end)
provium.test("a leak", function()
  provium.vm("host"):tail_file("/etc/hostname")
end)
LUA
prove --ext .test.lua -r -e "$SRC/lua/provium-test" "$T/tests" >"$T/prove2.out" 2>&1
rc=$?
check "prove: failures fail (rc $rc)" test $rc != 0
check "prove: the two failing points are named" eval \
    'grep -q "Failed tests:  1-2" "$T/prove2.out" && grep -q "Result: FAIL" "$T/prove2.out"'
check "prove: no parse errors (the TAP is well formed)" eval '! grep -qi "parse error" "$T/prove2.out"'
rm "$T/tests/fail.test.lua"

# ---- the library's own checks, through provium-test and prove --------------------
cp "$SRC/test/install/library.test.lua" "$T/tests/"
prove --ext .test.lua -e "$SRC/lua/provium-test" "$T/tests/library.test.lua" >"$T/prove3.out" 2>&1
rc=$?
check "library.test.lua under prove (rc $rc)" test $rc = 0
[ $rc = 0 ] || { PROVIUM_MOUNT=$MP lua5.4 "$SRC/lua/provium-test" "$T/tests/library.test.lua" >&2; }
check "library.test.lua: 5 tests" grep -q "Files=1, Tests=5" "$T/prove3.out"

# ---- busted ------------------------------------------------------------------------
if command -v busted >/dev/null; then
    (cd "$SRC/test/install" && busted --lua=lua5.4 -o TAP provium_spec.lua) >"$T/busted.out" 2>&1
    rc=$?
    check "busted --lua=lua5.4 runs the spec (rc $rc)" test $rc = 0
    check "busted: three successes" eval '[ "$(grep -c "^ok " "$T/busted.out")" = 3 ]'
    [ $rc = 0 ] || cat "$T/busted.out" >&2
else
    fail "busted is not installed (Debian lua-busted)"
fi
check "no stream left open" test -z "$(ls "$MP/streams")"
