#!/usr/bin/env bash
# fs_lifetime.sh - stream lifetime (SPEC §4.4): owner release, keep,
# rmdir, clone slot reclaim (30 s by default, --slot-timeout), SIGTERM
# with blocked readers.
. "$(dirname "$0")/lib.sh"

start_fs
F=$T/app.log
: >"$F"

# --- a slot never opened is reclaimed after 30 s: cloned now, checked at
# the end, with both bounds (the other cases run meanwhile).
RECLAIM_ID=$(cat "$MP/clone")
RECLAIM_T0=$(now_ms)
need "clone slot exists" test -d "$MP/streams/$RECLAIM_ID"

# --- the owner's close ends the stream
new_stream 3 "tail_file host $F" || exit 1
S=$MP/streams/$ID
# Not `cat ... &` alone: a child inherits fd 3, and with it the ownership.
cat "$S/data" >/dev/null 3>&- &
CAT=$!
PIDS+=($CAT)
check "stream directory exists" test -d "$S"
check "the reader is attached" wait_for 2 grep -q "^readers: 1" "$S/info"
exec 3>&-
check "owner closed: directory gone" wait_for 2 test ! -e "$S"
check "owner closed: blocked reader ended" \
    wait_for 2 eval '! kill -0 $CAT 2>/dev/null'
reap $CAT
check "owner closed: the reader got end of file (cat exited $?)" test $? -eq 0

# --- the owner process dies: same
ID=$(cat "$MP/clone")
(
    exec 4<>"$MP/streams/$ID/ctl"
    echo "tail_file host $F" >&4
    timeout 10 head -c 5 <&4 >"$T/owner.reply"
    kill -9 $BASHPID
) 2>/dev/null
check "owner killed: it had opened the stream ($(cat "$T/owner.reply"))" \
    test "$(cat "$T/owner.reply")" = "ok 0$(printf '\n')"
check "owner killed: directory gone" wait_for 2 test ! -e "$MP/streams/$ID"

# --- keep: survives its opener; rmdir ends it
ID=$(cat "$MP/clone")
echo "tail_file host $F keep" >"$MP/streams/$ID/ctl"
check "keep: survives the writer's close" \
    wait_for 2 grep -q "^state: live" "$MP/streams/$ID/info"
echo "kept" >>"$F"
check "keep: data flows" \
    eval '[ "$(timeout 2 head -c 4 "$MP/streams/$ID/data")" = kept ]'
check "rmdir closes a kept stream" rmdir "$MP/streams/$ID"
check "rmdir: gone" test ! -e "$MP/streams/$ID"
check "rmdir of a missing id: ENOENT" eval '! rmdir "$MP/streams/$ID" 2>/dev/null'

# --- the default reclaim: not before 25 s, not after 35 s
check "default reclaim: slot gone within 40 s" \
    wait_for 40 test ! -e "$MP/streams/$RECLAIM_ID"
dt=$(($(now_ms) - RECLAIM_T0))
check "default reclaim after 25-35 s (${dt} ms)" \
    test $dt -ge 25000 -a $dt -le 35000

# --- unmount (SIGTERM) answers blocked readers first, then exits 0
ID=$(cat "$MP/clone")
echo "tail_file host $F keep" >"$MP/streams/$ID/ctl"
need "kept stream is live" \
    wait_for 2 grep -q "^state: live" "$MP/streams/$ID/info"
cat "$MP/streams/$ID/data" >"$T/cat.out" 2>"$T/cat.err" &
CAT=$!
PIDS+=($CAT)
echo "last words" >>"$F"
need "the reader has the stream's bytes" \
    wait_for 2 grep -q "last words" "$T/cat.out"
exec 5<>"$MP/streams/$ID/ctl"
printf 'expect "never" 60s\n' >&5
# One read(2) for the whole reply: after unmount no second read can come.
(head -c 9 <&5 >"$T/ctl.out") &
R=$!
PIDS+=($R)
need "both reads parked" wait_for 2 eval 'grep -q "^parked: 2" "$MP/ctl"'
check "SIGTERM: daemon exits 0" stop_fs
check "SIGTERM: blocked cat ended" wait_for 2 eval '! kill -0 $CAT 2>/dev/null'
reap $CAT
check "SIGTERM: blocked cat got end of file (exit status $?)" test $? -eq 0
check "SIGTERM: cat got the stream's bytes, nothing more" \
    test "$(cat "$T/cat.out")" = "last words"
check "SIGTERM: blocked ctl reader got 'closed'" \
    wait_for 2 eval '[ "$(cat "$T/ctl.out" 2>/dev/null)" = "closed 13" ]'
check "SIGTERM: unmounted" eval '! grep -q " $MP " /proc/mounts'
exec 5>&-

# --- --slot-timeout: the same reclaim at 2 s, both bounds; a failed open
# starts the time again; an opened slot is never reclaimed
start_fs --slot-timeout 2s
A=$(cat "$MP/clone")
t0=$(now_ms)
B=$(cat "$MP/clone")
new_stream 6 "tail_file host $F" || exit 1
OPENED=$ID
sleep 1 # time must pass: B's open fails 1 s into its life
check "slot B exists after 1 s" test -d "$MP/streams/$B"
exec 7<>"$MP/streams/$B/ctl"
ctl_cmd 7 "tail_file host $T/missing"
check "slot B: the open fails ($STATUS $PAYLOAD)" test "$STATUS" = error
t1=$(now_ms)
check "slot A reclaimed within 4 s" wait_for 4 test ! -e "$MP/streams/$A"
dt=$(($(now_ms) - t0))
check "slot A reclaimed after 1.8-3 s (${dt} ms)" test $dt -ge 1800 -a $dt -le 3000
check "slot B (failed open at ${t1}) reclaimed within 4 s of it" \
    wait_for 4 test ! -e "$MP/streams/$B"
dt=$(($(now_ms) - t1))
check "slot B reclaimed 1.8-3 s after its failed open (${dt} ms)" \
    test $dt -ge 1800 -a $dt -le 3000
check "an opened slot is not reclaimed" test -d "$MP/streams/$OPENED"
exec 6>&- 7>&-
check "a bad --slot-timeout is refused before mounting" \
    eval '! "$FS_BIN" --slot-timeout -1 "$T/never" 2>"$T/bad.err" &&
          grep -q "slot-timeout .-1.: duration: must be a finite" "$T/bad.err" &&
          ! grep -q " $T/never " /proc/mounts'
