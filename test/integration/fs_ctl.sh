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
check "malformed open: write fails (EINVAL)" \
    eval '! printf "bogus_cmd x\n" 2>"$T/w.err" >&3'
check "malformed open: the write's error is EINVAL" \
    grep -q "Invalid argument" "$T/w.err"
ctl_reply 3
check "malformed open: error reply names it ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"unknown open command"* ]]'
check "unterminated quote: write fails" \
    eval '! printf "tail_file host \"abc\n" >&3 2>/dev/null'
ctl_reply 3
check "unterminated quote: error reply ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *quote* ]]'

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

# --- state line when nothing is outstanding (bash's read: a byte per
# read(2), then the end of file)
read_line 3
read_eof 3
check "state line ($LINE)" \
    test "$LINE" = "live bytes=0 frames=0 consumed=0 pending=0 readers=0"

# --- ops
echo "hello world" >>"$F"
ctl_cmd 3 "expect world 5s"
check "expect ok, empty payload" test "$STATUS" = ok -a -z "$PAYLOAD"
ctl_cmd 3 "next 1s"
check "next: the pending newline ($STATUS $(printf %q "$PAYLOAD_RAW"))" \
    test "$STATUS" = ok -a "$PAYLOAD_RAW" = $'\n'
t0=$(now_ms)
ctl_cmd 3 "expect \"never\" 300ms"
dt=$(($(now_ms) - t0))
check "expect timeout: status timeout after ~300 ms (${dt} ms)" \
    test "$STATUS" = timeout -a $dt -ge 250 -a $dt -lt 1500
check "expect timeout message (SPEC §4.3): $PAYLOAD" \
    eval '[[ "$PAYLOAD" == "expect timed out waiting for \`never\`"* ]]'
ctl_cmd 3 "next 200ms"
check "next timeout ($PAYLOAD)" \
    test "$STATUS" = timeout -a "$PAYLOAD" = "next timed out after 200ms"
ctl_cmd 3 "drain 100ms"
check "drain of nothing: ok 0" test "$STATUS" = ok -a -z "$PAYLOAD"
# One append is one frame only if the agent reads it alone: wait between.
echo "a" >>"$F"
need "frame 2 arrives" \
    wait_for 2 eval 'grep -q "^frames: 2" "$MP/streams/$ID/info"'
echo "b" >>"$F"
need "frame 3 arrives" \
    wait_for 2 eval 'grep -q "^frames: 3" "$MP/streams/$ID/info"'
ctl_cmd 3 "drain 100ms"
check "drain: one record per frame ($(printf %q "$PAYLOAD_RAW"))" \
    test "$STATUS" = ok -a "$PAYLOAD_RAW" = $'2\na\n2\nb\n'

# --- several commands before reading: replies in order
printf 'eof\n' >&3
printf 'next 100ms\n' >&3
printf 'eof\n' >&3
ctl_reply 3; r1="$STATUS $PAYLOAD"
ctl_reply 3; r2="$STATUS $PAYLOAD"
ctl_reply 3; r3="$STATUS $PAYLOAD"
check "queued replies in order ($r1 / $r2 / $r3)" \
    eval '[ "$r1" = "ok false" ] && [ "$r2" = "timeout next timed out after 100ms" ] && [ "$r3" = "ok false" ]'

# --- an interrupted reply read: EINTR (a handler without SA_RESTART sees
# it), the op keeps running, and the next read gets its reply
out=$("$PROBE" eintr "$MP/streams/$ID/ctl" "$MP/ctl" "$F" "late" $'ok 0\n' \
    'expect "late" 5s')
check "interrupted ctl read: EINTR, then the reply ($out)" test $? -eq 0
check "interrupted ctl read: EINTR reported" grep -q '^EINTR after' <<<"$out"
# The same with timeout(1) (SIGTERM kills the reader; the op goes on).
printf 'expect "later" 3s\n' >&3
timeout 0.3 head -c 1 <&3 >/dev/null
check "interrupted ctl read: rc 124" test $? -eq 124
echo later >>"$F"
ctl_reply 3
check "re-read after interrupt gets the reply ($STATUS $PAYLOAD)" \
    test "$STATUS" = ok -a -z "$PAYLOAD"

# --- bad input never disturbs the daemon
# One write(2) of 100 KiB (a pipe would split it into 4 KiB commands).
head -c 102400 /dev/zero | tr '\0' a >"$T/big"
check "a 100 KiB write fails" \
    eval '! dd if="$T/big" bs=102400 count=1 status=none 2>"$T/w.err" >&3'
check "a 100 KiB write fails with EMSGSIZE ($(cat "$T/w.err"))" \
    grep -q "Message too long" "$T/w.err"
ctl_reply 3
check "huge write: error reply ($PAYLOAD)" \
    test "$STATUS" = error -a "$PAYLOAD" = "command too long (102400 bytes, max 65536)"
check "unknown op: write fails" eval '! printf "frobnicate\n" >&3 2>/dev/null'
ctl_reply 3
check "unknown op: error reply ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == "unknown stream command \`frobnicate\`"* ]]'
check "bad duration: write fails" eval '! printf "next -1s\n" >&3 2>/dev/null'
ctl_reply 3
check "bad duration message ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [ "$PAYLOAD" = "duration: must be a finite, non-negative number (got -1s)" ]'
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
check "after close: closed ($PAYLOAD)" \
    test "$STATUS" = closed -a "$PAYLOAD" = "stream closed"
exec 3>&-
