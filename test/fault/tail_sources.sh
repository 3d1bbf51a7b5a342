#!/usr/bin/env bash
# tail_sources.sh - sources that never end or never grow as files do
# are streamed as what they are or refused, never re-read in a loop
# (SPEC §6.3, issue 10 item 6): /proc and /sys files, FIFOs, character
# devices. And a tail whose history cannot be recorded (the daemon's
# spool full) ends with an error, not in silence.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

# open_cmd FD COMMAND: an open command on a fresh slot; sets ID, STATUS,
# PAYLOAD (the reply), whether it succeeded or not.
open_cmd() {
    ID=$(cat "$MP/clone")
    eval "exec $1<>\"\$MP/streams/\$ID/ctl\""
    ctl_cmd "$1" "$2"
}

info_of() { sed -n "s/^$2: //p" "$MP/streams/$1/info"; }

start_fs

# --- /proc/self/status, start=end (the default): refused, with why
open_cmd 4 "tail_file host /proc/self/status"
check "procfs, start=end: refused ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"/proc/self/status: a file on procfs is generated when read and never grows"*"start=beginning"* ]]'
ctl_cmd 4 "tail_file host /proc/self/status start=-10"
check "procfs, start=-N: refused" test "$STATUS" = error
# --- start=beginning: read once to its end, the stream ends cleanly
ctl_cmd 4 "tail_file host /proc/self/status start=beginning"
check "procfs, start=beginning: opens" test "$STATUS" = ok
check "procfs: the stream ends by itself" \
    wait_for 5 eval '[ "$(info_of $ID state)" = ended ]'
out=$(timeout 5 cat "$MP/streams/$ID/data")
check "procfs: the file's content, once" \
    eval '[ "$(grep -c "^Name:" <<<"$out")" = 1 ] && [[ "$out" == *"Pid:"* ]]'
check "procfs: one read, no truncation loop (frames $(info_of $ID frames), truncations $(info_of $ID truncations))" \
    eval '[ "$(info_of $ID frames)" -le 2 ] && [ "$(info_of $ID truncations)" = 0 ]'
ctl_cmd 4 "drain 1s"
ctl_cmd 4 "next 1s"
check "procfs: after the content, next says eof ($STATUS)" test "$STATUS" = eof
exec 4>&-

# --- sysfs, from an offset
open_cmd 4 "tail_file host /sys/kernel/mm/transparent_hugepage/enabled start=3"
if [ "$STATUS" = ok ]; then
    want=$(tail -c +4 /sys/kernel/mm/transparent_hugepage/enabled)
    check "sysfs, start=N: the bytes from N, then the end" \
        eval '[ "$(timeout 5 cat "$MP/streams/$ID/data")" = "$want" ]'
else
    fail "sysfs, start=N: open failed: $PAYLOAD"
fi
exec 4>&-

# --- a FIFO: waits for its first writer, ends after its last
mkfifo "$T/fifo"
open_cmd 4 "tail_file host $T/fifo"
check "FIFO: opens with no writer" test "$STATUS" = ok
cat "$MP/streams/$ID/data" >"$T/fifo.out" 4>&- &
CAT=$!
PIDS+=($CAT)
check "FIFO: no writer yet: the stream stays live" \
    eval '! wait_for 1 eval "[ \"\$(info_of $ID state)\" != live ]"'
# (bounded: a FIFO with no reader left would block the writer forever)
timeout 5 bash -c '{ echo one; echo two; } >"$1"' _ "$T/fifo"
check "FIFO: the writer's bytes arrive and the stream ends after it" \
    wait_for 5 eval '! kill -0 $CAT 2>/dev/null'
check "FIFO: ... all of them" test "$(cat "$T/fifo.out")" = "$(printf 'one\ntwo')"
check "FIFO: a clean end" test "$(info_of $ID state)" = ended
exec 4>&-
open_cmd 4 "tail_file host $T/fifo start=10"
check "FIFO, start=N: refused ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"a FIFO has no offsets"* ]]'
exec 4>&-

# --- a character device is read as a pipe
open_cmd 4 "tail_file host /dev/null"
check "/dev/null: opens" test "$STATUS" = ok
check "/dev/null: ends at once, empty" \
    wait_for 5 eval '[ "$(info_of $ID state)" = ended ] && [ "$(info_of $ID bytes)" = 0 ]'
exec 4>&-
open_cmd 4 "tail_file host /dev/zero"
check "/dev/zero: streams (flow-controlled)" \
    eval '[ "$(timeout 5 head -c 3000000 "$MP/streams/$ID/data" | wc -c)" = 3000000 ]'
exec 4>&-
stop_fs

# --- the daemon's spool fills while a tail flows: the stream ends with
# an error saying so; the bytes before are intact
small_tmpfs "$T/small" 2m
start_fs --spool-dir "$T/small"
: >"$T/grow.log"
open_cmd 4 "tail_file host $T/grow.log keep"
cat "$MP/streams/$ID/data" >"$T/grow.out" 2>"$T/grow.err" 4>&- &
CAT=$!
PIDS+=($CAT)
wait_for 2 eval 'grep -q "^readers: 1" "$MP/streams/$ID/info"'
seq 1 400000 >>"$T/grow.log"
check "tail, spool full: the reader ends" wait_for 10 eval '! kill -0 $CAT 2>/dev/null'
wait $CAT
rc=$?
check "tail, spool full: with an error, not EOF (rc $rc: $(cat "$T/grow.err"))" \
    grep -q "No space left on device" "$T/grow.err"
check "tail, spool full: the bytes before the error are the file's" \
    cmp -s "$T/grow.out" <(head -c "$(stat -c %s "$T/grow.out")" "$T/grow.log")
check "tail, spool full: info says why" \
    grep -q "^error: .*No space left on device" "$MP/streams/$ID/info"
ctl_cmd 4 "close"
exec 4>&-
