#!/usr/bin/env bash
# lua_expect.sh - issue 5's benchmark: a process writes 100 MiB and then
# the line READY; how long until `READY` is found
#   lua:      proc:stdout_stream():expect("READY", "60s") through the Lua
#             library, the mount and the host VM's agent (process start to
#             match);
#   pexpect:  Python pexpect's expect_exact("READY") on the same program;
#   grep:     `grep -m1 -F READY` on the same output already in a file
#             (and, for scale, the program writing that file plus grep).
# Alternating, in the same run, RUNS times; prints each run and medians.
#
# usage: PROVIUM_BUILD_DIR=build/release test/bench/lua_expect.sh [MiB] [RUNS]
here=$(cd "$(dirname "$0")" && pwd)
export PROVIUM_SOURCE_DIR=${PROVIUM_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
. "$here/../integration/lib.sh"
MIB=${1:-100}
RUNS=${2:-5}
PROG="head -c $((MIB << 20)) /dev/zero | tr '\\0' x | fold -w 79; echo READY"

start_fs --history-limit 0
export PROVIUM_MOUNT=$MP
export LUA_PATH="$PROVIUM_SOURCE_DIR/lua/?.lua;;" LUA_CPATH="$BUILD/lua/?.so;;"

lua_run() {
    lua5.4 - "$PROG" <<'LUA'
local provium = require "provium"
local core = require "provium.core"
local t0 = core.now()
local p = provium.vm("host"):run_async(arg[1])
local out <close> = p:stdout_stream()
out:expect("READY", "60s")
print(string.format("%.3f", core.now() - t0))
p:wait("60s")
LUA
}

pexpect_run() {
    python3 - "$PROG" <<'PY'
import sys, time, pexpect
t0 = time.monotonic()
c = pexpect.spawn("/bin/sh", ["-c", sys.argv[1]], timeout=600,
                  maxread=65536, encoding=None)
c.expect_exact(b"READY")
print("%.3f" % (time.monotonic() - t0))
c.close()
PY
}

secs() { # secs COMMAND...: wall time of a command
    local t0 t1
    t0=$(date +%s%N)
    # Through a pipe: GNU grep treats a /dev/null stdout as -q.
    "$@" | cat >/dev/null
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}

file=$T/out.txt
sh -c "$PROG" >"$file"
[ "$(stat -c %s "$file")" -gt $((MIB << 20)) ] || fail "output file too small"
printf 'run  lua_s  pexpect_s  grep_s  write+grep_s\n'
L=() P=() G=() W=()
for i in $(seq "$RUNS"); do
    l=$(lua_run) || fail "lua run"
    p=$(pexpect_run) || fail "pexpect run"
    g=$(secs grep -m1 -F READY "$file")
    w=$(secs sh -c "{ $PROG; } > $file && grep -m1 -F READY $file")
    printf '%3d  %5s  %9s  %6s  %12s\n' "$i" "$l" "$p" "$g" "$w"
    L+=("$l") P+=("$p") G+=("$g") W+=("$w")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ml=$(median "${L[@]}") mp=$(median "${P[@]}") mg=$(median "${G[@]}") mw=$(median "${W[@]}")
echo "median: lua $ml s, pexpect $mp s, grep $mg s, write+grep $mw s"
awk -v l="$ml" -v p="$mp" -v g="$mg" -v w="$mw" 'BEGIN {
    printf "pexpect/lua %.1fx; lua/grep %.2fx; lua/(write+grep) %.2fx\n",
        p / l, l / g, l / w }'
