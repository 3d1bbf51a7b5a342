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
# With `list` first (issue 13): the program ends with `READY 42 ok`, and
# both wait for a list of 10 patterns, 5 literals and 5 regexes, the
# last one the regex that matches: Lua's
# expect({"panic: A", ..., provium.re("READY [0-9]+ ok")}, "60s") (which
# returns the index) beside pexpect's expect([...]) with the same regexes
# (the literals escaped), searchwindowsize=4096 (without one, pexpect
# searches its whole buffer again after every read: quadratic, 35 s for
# 32 MiB, minutes for 100 MiB; docs/benchmarks.md), and grep -E -m1 -f
# on the file.
#
# usage: [PRODUCER=CMD] PROVIUM_BUILD_DIR=build/release test/bench/lua_expect.sh [list] [MiB] [RUNS]
here=$(cd "$(dirname "$0")" && pwd)
export PROVIUM_SOURCE_DIR=${PROVIUM_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
. "$here/../integration/lib.sh"
LIST=
[ "${1:-}" = list ] && { LIST=1; shift; }
MIB=${1:-100}
RUNS=${2:-5}
LAST=READY
[ -n "$LIST" ] && LAST="READY 42 ok"
# PRODUCER replaces the program's output before its last line (e.g. a
# faster `yes ... | head -c N`, to see the stream's own cost).
PROG="${PRODUCER:-head -c $((MIB << 20)) /dev/zero | tr '\\0' x | fold -w 79}; echo $LAST"
# The list: 5 literals, 5 regexes (Lua's form; Python's and grep's below).
LITS=("panic: A" "panic: B" "Kernel panic" "FATAL ERROR" "Segmentation fault")
RES=("error [0-9]+ in [a-z_]+" "segfault at [0-9a-f]+ ip" "Call Trace:.*xyz"
     "oops[0-9]{3}" "READY [0-9]+ ok")

start_fs --history-limit 0
export PROVIUM_MOUNT=$MP
export LUA_PATH="$PROVIUM_SOURCE_DIR/lua/?.lua;;" LUA_CPATH="$BUILD/lua/?.so;;"

lua_run() {
    lua5.4 - "$PROG" "$LIST" "${LITS[@]}" "${RES[@]}" <<'LUA'
local provium = require "provium"
local core = require "provium.core"
local pats = {}
for i = 3, 7 do pats[#pats + 1] = arg[i] end
for i = 8, 12 do pats[#pats + 1] = provium.re(arg[i]) end
local t0 = core.now()
local p = provium.vm("host"):run_async(arg[1])
local out <close> = p:stdout_stream()
if arg[2] == "1" then
  local i = out:expect(pats, "60s")
  assert(i == 10, "the last pattern matched")
else
  out:expect("READY", "60s")
end
print(string.format("%.3f", core.now() - t0))
p:wait("60s")
LUA
}

pexpect_run() {
    python3 - "$PROG" "$LIST" "${LITS[@]}" "${RES[@]}" <<'PY'
import re, sys, time, pexpect
t0 = time.monotonic()
c = pexpect.spawn("/bin/sh", ["-c", sys.argv[1]], timeout=600,
                  maxread=65536, encoding=None,
                  searchwindowsize=4096 if sys.argv[2] == "1" else None)
if sys.argv[2] == "1":
    pats = [re.compile(re.escape(p.encode())) for p in sys.argv[3:8]]
    pats += [re.compile(p.encode()) for p in sys.argv[8:13]]
    assert c.expect(pats) == 9
else:
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
{ printf '%s\n' "${LITS[@]}" | sed 's/[][\.*^$+?(){}|]/\\&/g'; printf '%s\n' "${RES[@]}"; } \
    >"$T/patterns"
sh -c "$PROG" >"$file"
[ "$(stat -c %s "$file")" -gt $((MIB << 20)) ] || fail "output file too small"
printf 'run  lua_s  pexpect_s  grep_s  write+grep_s\n'
L=() P=() G=() W=()
for i in $(seq "$RUNS"); do
    l=$(lua_run) || fail "lua run"
    p=$(pexpect_run) || fail "pexpect run"
    if [ -n "$LIST" ]; then
        g=$(secs grep -E -m1 -f "$T/patterns" "$file")
        w=$(secs sh -c "{ $PROG; } > $file && grep -E -m1 -f $T/patterns $file")
    else
        g=$(secs grep -m1 -F READY "$file")
        w=$(secs sh -c "{ $PROG; } > $file && grep -m1 -F READY $file")
    fi
    printf '%3d  %5s  %9s  %6s  %12s\n' "$i" "$l" "$p" "$g" "$w"
    L+=("$l") P+=("$p") G+=("$g") W+=("$w")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ml=$(median "${L[@]}") mp=$(median "${P[@]}") mg=$(median "${G[@]}") mw=$(median "${W[@]}")
echo "median: lua $ml s, pexpect $mp s, grep $mg s, write+grep $mw s"
awk -v l="$ml" -v p="$mp" -v g="$mg" -v w="$mw" 'BEGIN {
    printf "pexpect/lua %.1fx; lua/grep %.2fx; lua/(write+grep) %.2fx\n",
        p / l, l / g, l / w }'
