#!/usr/bin/env bash
# cli.sh - the provium CLI (provium(1)): every subcommand, its errors (a
# missing mount, VM or stream; bad usage) with a clear message and the
# documented status, --json parsed by jq and checked to be UTF-8, `run`
# forwarding stdout and stderr to the right fds as they are produced.
. "$(dirname "$0")/lib.sh"

P=$SRC/contrib/provium
MP=$T/mnt
start_fs "$FS_BIN" "$MP" --agent "$AGENT_BIN" || exit 1
wait_for 10 grep -q "host(up)" "$MP/ctl"
export PROVIUM_MOUNT=$MP

# expect STATUS TEXT -- ARGS...: run the CLI; its status and stderr.
expect() {
    local want=$1 text=$2 rc
    shift 3
    "$P" "$@" >"$T/out" 2>"$T/errout"
    rc=$?
    if [ $rc -ne "$want" ]; then
        fail "provium $* -> rc $rc, want $want ($(cat "$T/errout"))"
    elif [ -n "$text" ] && ! grep -qF -- "$text" "$T/errout"; then
        fail "provium $* -> stderr lacks \`$text\`: $(cat "$T/errout")"
    else
        ok "provium $* -> rc $rc ${text:+($text)}"
    fi
}
json() { # json FILE JQ-FILTER: valid UTF-8 JSON and the filter holds
    iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1 && jq -e "$2" "$1" >/dev/null ||
        { log "    json: $(head -c 800 "$1")"; false; }
}

# ---- version, help, usage -----------------------------------------------
check "--version" eval '"$P" --version | grep -qE "^provium [0-9]+\.[0-9]+\.[0-9]+ "'
check "version" eval '"$P" version | grep -q "^provium "'
check "--help lists every command" eval \
    '"$P" --help | grep -q "vm add NAME agent=ENDPOINT" && "$P" help | grep -q "^  run "'
expect 2 "usage: provium" --
expect 2 "unknown command \`bogus\`" -- bogus
expect 2 "unknown option \`--bogus\`" -- --bogus ls
expect 2 "usage: provium info ID" -- info
expect 2 "a stream id is a number, got \`x\`" -- info x
expect 2 "--json is for ls, status, info and vm list" -- --json close 1
expect 2 "unknown stream kind \`tale_file\`" -- open host tale_file /x
expect 2 "usage: provium open VM tail_file PATH" -- open host tail_file
expect 2 "expected KEY=VALUE" -- open host tail_file /x start
expect 2 "usage: provium run" -- run host
expect 2 "run: unknown option \`--bogus\`" -- run --bogus host true
expect 2 "unknown vm command \`frob\`" -- vm frob
expect 2 "usage: provium expect ID [-t T] [--skip printk] PATTERN..." -- expect 1
expect 2 "peek: unknown option \`-x\` (a literal starting with - is -ex -x)" -- peek 1 -x
expect 2 "-re needs a pattern after it" -- read_until 1 -re
expect 2 "agent=ENDPOINT is required" -- vm add v1
expect 2 "expected agent=, console= or nic=" -- vm add v1 agent=unix:/x foo=1

# ---- a missing mount, VM, stream -------------------------------------------
for cmd in ls status "info 1" "follow 1" "close 1" "open host tail_file /x" \
    "run host true" "vm list" "vm add v agent=unix:/x" "vm del v"; do
    # shellcheck disable=SC2086 # words on purpose
    expect 1 "no proviumfs mount at $T/none" -- -m "$T/none" $cmd
done
PROVIUM_MOUNT=$T/none2 expect 1 "no proviumfs mount at $T/none2 (start proviumfs, or set PROVIUM_MOUNT or give -m MOUNT)" -- ls
for cmd in "open nosuch tail_file /x" "open nosuch console" "run nosuch true" "vm del nosuch"; do
    # shellcheck disable=SC2086
    expect 1 "no VM \`nosuch\` in $MP (VMs: host)" -- $cmd
done
for cmd in "info 99" "follow 99" "close 99" "expect 99 x"; do
    # shellcheck disable=SC2086
    expect 1 "no stream 99 in $MP (see provium ls)" -- $cmd
done
expect 1 "No such file or directory" -- open host tail_file "$T/nonexistent"
check "a failed open leaves no slot behind" test -z "$(ls "$MP/streams")"

# ---- open, ls, info, follow, close ---------------------------------------------
F="$T/with space.log"
printf 'first\n' >"$F"
id=$("$P" open host tail_file "$F" start=beginning site=x.test.lua:3 test=cli)
check "open prints an id ($id)" eval '[[ "$id" =~ ^[0-9]+$ ]]'
check "open: keep (the stream outlives the CLI)" grep -qx "keep: yes" "$MP/streams/$id/info"
check "ls: a row" eval '"$P" ls | grep -qE "^$id +tail_file +$F +x.test.lua:3 +live +6$"'
"$P" ls --json >"$T/ls.json"
check "ls --json: an array of streams" json "$T/ls.json" \
    "type == \"array\" and (.[] | select(.id == $id) | .kind == \"tail_file\" and .detail == \"$F\" and .bytes == 6 and .owner_pid == 0 and .site == \"x.test.lua:3\")"
"$P" --json info "$id" >"$T/info.json"
check "info --json (before the command)" json "$T/info.json" ".id == $id and .test == \"cli\" and .keep == \"yes\""
check "info: the info file" eval '"$P" info "$id" | grep -qx "kind: tail_file"'
printf 'second\n' >>"$F"
check "follow: the stream from byte 0, live" eval \
    '[ "$(timeout 5 "$P" follow "$id" | head -c 13)" = "$(printf "first\nsecond")" ]'
timeout --preserve-status -s INT 1 "$P" follow "$id" >/dev/null 2>"$T/int.err"
rc=$?
check "follow: Ctrl-C ends it quietly (rc $rc)" eval '[ $rc = 130 ] && [ ! -s "$T/int.err" ]'
check "close" "$P" close "$id"
check "closed: gone" test ! -e "$MP/streams/$id"
# Bytes that are not UTF-8 in a path: still valid JSON.
B=$T/$'bad\xff.log'
: >"$B"
bid=$("$P" open host tail_file "$B")
"$P" info "$bid" --json >"$T/bad.json"
check "--json: non-UTF-8 detail is written \\xHH" json "$T/bad.json" '.detail | endswith("bad\\xff.log")'
"$P" ls --json >"$T/ls2.json"
check "ls --json with a non-UTF-8 path" json "$T/ls2.json" 'length == 1'
"$P" close "$bid"
"$P" ls --json >"$T/ls3.json"
check "ls --json with no stream: []" json "$T/ls3.json" '. == []'
cid=$("$P" open - capture lo)
check "open - capture lo" eval '[[ "$cid" =~ ^[0-9]+$ ]]'
check "capture lo: the stream's kind is the interface's (nic)" \
    eval 'grep -qx "kind: nic_capture" "$MP/streams/$cid/info" && grep -qx "capture_kind: nic" "$MP/streams/$cid/info"'
"$P" status --json >"$T/status.json"
check "status --json" json "$T/status.json" \
    '.vms[0].name == "host" and .vms[0].state == "up" and .captures.lo == 1 and (.pid|type) == "number" and .shared == false'
check "status: the status file" eval '"$P" status | grep -q "^vms: host(up)"'
"$P" close "$cid"
"$P" status --json >"$T/status2.json"
check "status --json: captures is an object when empty" json "$T/status2.json" '.captures == {}'

# ---- vm add / list / del ----------------------------------------------------------
check "vm add" "$P" vm add v1 agent=unix:/nonexistent/agent.sock nic=tapx
expect 1 "vm add: \`v1\` exists" -- vm add v1 agent=unix:/x
expect 1 "bad name \`b@d\`" -- vm add 'b@d' agent=unix:/x
check "vm list: both" eval '"$P" vm list | grep -q "^host " && "$P" vm list | grep -qE "^v1 +(down|connecting) +unix:/nonexistent/agent.sock"'
"$P" vm list --json >"$T/vms.json"
check "vm list --json" json "$T/vms.json" 'map(.name) == ["host", "v1"] and .[1].nics == "tapx"'
check "vm del" "$P" vm del v1
check "vm del: gone" eval '! "$P" vm list | grep -q "^v1 "'

# ---- run ---------------------------------------------------------------------------
out=$("$P" run host -- sh -c 'echo out; echo err >&2; exit 5' 2>"$T/run.err")
rc=$?
check "run: stdout to stdout ($out)" test "$out" = out
check "run: stderr to stderr" grep -qx err "$T/run.err"
check "run: the exit status (5: $rc)" test $rc -eq 5
"$P" run host -- sh -c 'kill -TERM $$'
rc=$?
check "run: a signal is 128+N ($rc)" test $rc -eq 143
"$P" run --cwd /tmp --env K=V host -- sh -c 'echo "$PWD $K"' >"$T/cwd.out"
check "run: --cwd and --env" grep -qx "/tmp V" "$T/cwd.out"
# As produced: stderr's line arrives while the process still runs, before
# its stdout's last line (a CLI that prints all stdout first fails).
coproc RUN { "$P" run host -- sh -c 'echo o1; sleep 0.3; echo e1 >&2; read x; echo o2' 2>&1; }
exec {runfd}<&"${RUN[0]}"
RUN_PID_SAVED=$RUN_PID
IFS= read -r -t 10 l1 <&"$runfd"
IFS= read -r -t 10 l2 <&"$runfd"
check "run: stdout's first line as produced ($l1)" test "$l1" = o1
check "run: stderr's line while the process runs ($l2)" test "$l2" = e1
proc=$(ls "$MP/vms/host/procs" | sort -n | tail -1)
echo 'stdin '"$proc"' "go\n"' >"$MP/vms/host/ctl" 2>/dev/null
IFS= read -r -t 10 l3 <&"$runfd"
check "run: then the rest ($l3)" test "$l3" = o2
wait "$RUN_PID_SAVED" 2>/dev/null
start=$(now_ms)
"$P" run --timeout 1 host -- sh -c 'sleep 30 & sleep 30' 2>"$T/to.err"
rc=$?
check "run --timeout: status 124 ($rc)" test $rc -eq 124
check "run --timeout: says the group was killed" grep -q "timed out after 1; the process group was killed" "$T/to.err"
check "run --timeout: within the timeout ($(($(now_ms) - start)) ms)" test $(($(now_ms) - start)) -lt 5000
check "run --timeout: nothing left running" wait_for 5 eval '! pgrep -f "sleep 30" >/dev/null || ! pgrep -f "sleep 30" | xargs -r ps -o args= -p | grep -qx "sleep 30"'
check "run: no stream left open" wait_for 5 eval '[ "$("$P" ls --json | jq length)" = 0 ]'
