#!/usr/bin/env bash
# fs_ctl.sh - ctl from the shell (SPEC §4.3, §5): commands written, replies
# read back on the same open; errors, timeouts, bad input.
. "$(dirname "$0")/lib.sh"

start_fs
F=$T/app.log
: >"$F"

# --- open failures: the OS message, and the slot stays unopened
ID=$(cat "$MP/clone")
exec 3<>"$MP/streams/$ID/ctl"
ctl_cmd 3 "tail_file host $T/does-not-exist"
check "missing file: error with the OS message ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"No such file or directory"* ]]'
ctl_cmd 3 "tail_file nosuchvm $F"
check "unknown VM: error ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *nosuchvm*"No such file or directory"* ]]'
check "slot still unopened" grep -q "^state: unopened" "$MP/streams/$ID/info"

# --- malformed: the write fails with EINVAL, the reason is the reply
check "malformed open: write fails" eval '! printf "bogus_cmd x\n" >&3 2>/dev/null'
IFS= read -r line <&3
len=${line##* }
msg=$(head -c "$len" <&3)
read_eof 3
check "malformed open: error reply names it ($msg)" \
    eval '[ "${line% *}" = error ] && [[ "$msg" == *"unknown open command"* ]]'
check "unterminated quote: write fails" \
    eval '! printf "tail_file host \"abc\n" >&3 2>/dev/null'
IFS= read -r line <&3
head -c "${line##* }" <&3 >/dev/null
read_eof 3
check "unterminated quote: error reply" test "${line% *}" = error

# --- now open it for real, on the same ctl
ctl_cmd 3 "tail_file host $F site=boot.test.lua:12 test=boot"
check "open replies ok" test "$STATUS" = ok
check "site file" eval '[ "$(cat "$MP/streams/$ID/site")" = boot.test.lua:12 ]'
check "info: kind/detail/vm/test" \
    eval 'grep -q "^kind: tail_file" "$MP/streams/$ID/info" &&
          grep -q "^detail: $F" "$MP/streams/$ID/info" &&
          grep -q "^vm: host" "$MP/streams/$ID/info" &&
          grep -q "^test: boot" "$MP/streams/$ID/info"'
check "vms/host/streams lists it (SPEC §7 format)" \
    eval 'grep -qx "tail_file(\"$F\") created at boot.test.lua:12 (test \"boot\")" "$MP/vms/host/streams"'

# --- state line when nothing is outstanding
IFS= read -r state <&3
read_eof 3
check "state line ($state)" eval '[[ "$state" == "live bytes=0 "* ]]'

# --- ops
echo "hello world" >>"$F"
ctl_cmd 3 "expect world 5s"
check "expect ok, empty payload" test "$STATUS" = ok -a -z "$PAYLOAD"
ctl_cmd 3 "next 1s"
check "next: the pending newline" test "$STATUS" = ok
t0=$(now_ms)
ctl_cmd 3 "expect \"never\" 300ms"
dt=$(($(now_ms) - t0))
check "expect timeout: status timeout after ~300 ms (${dt} ms)" \
    test "$STATUS" = timeout -a $dt -ge 250 -a $dt -lt 1500
check "expect timeout message (SPEC §4.3): $PAYLOAD" \
    eval '[[ "$PAYLOAD" == "expect timed out waiting for \`never\`"* ]]'
ctl_cmd 3 "next 200ms"
check "next timeout" test "$STATUS" = timeout
ctl_cmd 3 "drain 100ms"
check "drain of nothing: ok 0" test "$STATUS" = ok -a -z "$PAYLOAD"
# One append is one frame only if the agent reads it alone: wait between.
echo "a" >>"$F"
wait_for 2 eval 'grep -q "^frames: 2" "$MP/streams/$ID/info"'
echo "b" >>"$F"
wait_for 2 eval 'grep -q "^frames: 3" "$MP/streams/$ID/info"'
ctl_cmd 3 "drain 100ms"
check "drain: one record per frame ($(printf %q "$PAYLOAD"))" \
    test "$PAYLOAD" = $'2\na\n2\nb'

# --- several commands before reading: replies in order
printf 'eof\n' >&3
printf 'next 100ms\n' >&3
printf 'eof\n' >&3
IFS= read -r l1 <&3; head -c "${l1##* }" <&3 >"$T/r1"; read_eof 3
IFS= read -r l2 <&3; head -c "${l2##* }" <&3 >/dev/null; read_eof 3
IFS= read -r l3 <&3; head -c "${l3##* }" <&3 >"$T/r3"; read_eof 3
check "queued replies in order ($l1 / $l2 / $l3)" \
    eval '[ "$l1" = "ok 5" ] && [ "$(cat "$T/r1")" = false ] && [ "${l2% *}" = timeout ] && [ "$l3" = "ok 5" ]'

# --- an interrupted reply read: the op keeps running, a re-read gets it
printf 'expect "late" 3s\n' >&3
timeout 0.3 head -c 1 <&3 >/dev/null
check "interrupted ctl read: rc 124" test $? -eq 124
echo late >>"$F"
IFS= read -r line <&3
read_eof 3
check "re-read after interrupt gets the reply ($line)" test "$line" = "ok 0"

# --- bad input never disturbs the daemon
check "a 100 KiB write fails (EMSGSIZE)" \
    eval '! head -c 102400 /dev/zero | tr "\0" a >&3 2>/dev/null'
IFS= read -r line <&3; head -c "${line##* }" <&3 >/dev/null; read_eof 3
check "huge write: error reply" test "${line% *}" = error
check "unknown op: write fails" eval '! printf "frobnicate\n" >&3 2>/dev/null'
IFS= read -r line <&3; head -c "${line##* }" <&3 >/dev/null; read_eof 3
check "bad duration: write fails" eval '! printf "next -1s\n" >&3 2>/dev/null'
IFS= read -r line <&3; msg=$(head -c "${line##* }" <&3); read_eof 3
check "bad duration message ($msg)" \
    eval '[[ "$msg" == "duration: must be a finite, non-negative number"* ]]'
check "opening a nonexistent id: ENOENT" \
    eval '! (exec 5<"$MP/streams/999999/ctl") 2>/dev/null'
check "daemon still serving" kill -0 "$FS_PID"

# --- global ctl
check "status mentions host" grep -q "^vms: host(up)" "$MP/ctl"
exec 6<>"$MP/ctl"
ctl_cmd 6 "vm del nosuch"
check "vm del unknown: error" test "$STATUS" = error
check "global ctl: malformed fails" eval '! printf "vm frob\n" >&6 2>/dev/null'
exec 6>&-

# --- close op ends the stream, the directory goes
ctl_cmd 3 "close"
check "close: ok" test "$STATUS" = ok
check "close: directory gone" wait_for 2 test ! -e "$MP/streams/$ID"
ctl_cmd 3 "next"
check "after close: closed" test "$STATUS" = closed
exec 3>&-
