#!/usr/bin/env bash
# fs_data.sh - streams/<id>/data (SPEC §4.1) against a real mount and the
# built-in host VM: live cat, independent readers, interrupts, EOF.
. "$(dirname "$0")/lib.sh"

start_fs
F=$T/app.log
: >"$F"

# --- cat sees appends within a second, and ends when the stream closes
new_stream 3 "tail_file host $F start=beginning" || exit 1
S=$MP/streams/$ID
cat "$S/data" >"$T/cat1.out" &
CAT1=$!
PIDS+=($CAT1)
cat "$S/data" >"$T/cat2.out" &
CAT2=$!
PIDS+=($CAT2)
t0=$(now_ms)
echo "line one" >>"$F"
check "cat sees an append within 1 s" \
    wait_for 1 grep -q "line one" "$T/cat1.out"
log "  (seen after $(($(now_ms) - t0)) ms)"

# --- the test's own cursor sees every byte too, independently
for i in $(seq 2 200); do echo "line $i" >>"$F"; done
seq 2 200 | sed 's/^/line /' | sed '1i line one' >"$T/expected"
ctl_cmd 3 "expect \"line one\" 5s"
check "expect finds the first line" test "$STATUS" = ok -a -z "$PAYLOAD"
ctl_cmd 3 "read_until \"line 200\" 5s"
check "read_until returns every byte up to the match" \
    test "$STATUS" = ok -a "$PAYLOAD_RAW" = $'\n'"$(tail -n +2 "$T/expected")"
ctl_cmd 3 "next 1s"
check "next returns the pending newline ($STATUS $(printf %q "$PAYLOAD_RAW"))" \
    test "$STATUS" = ok -a "$PAYLOAD_RAW" = $'\n'
check "second cat sees all 200 lines" \
    wait_for 5 eval '[ "$(wc -l <"$T/cat2.out")" -eq 200 ]'
check "first cat sees all 200 lines" \
    wait_for 5 eval '[ "$(wc -l <"$T/cat1.out")" -eq 200 ]'
check "readers got every byte, in order" cmp -s "$T/cat1.out" "$T/expected"
check "readers agree" cmp -s "$T/cat1.out" "$T/cat2.out"

# --- a late reader starts at byte 0
check "a late reader replays from byte 0" \
    eval '[ "$(timeout 5 head -c 9 "$S/data")" = "line one" ]'

# --- head -c and a 1-byte reader (bash read) work on the live file
check "head -c 4" eval '[ "$(timeout 5 head -c 4 "$S/data")" = "line" ]'
first=$(timeout 5 bash -c 'IFS= read -r l; printf %s "$l"' <"$S/data")
check "bash read gets the first line" test "$first" = "line one"

# --- closing the stream ends the blocked cats (EOF, exit 0)
ctl_cmd 3 "close"
check "close replies ok" test "$STATUS" = ok
check "cat 1 ends when the stream closes" \
    wait_for 2 eval '! kill -0 $CAT1 2>/dev/null'
check "cat 2 ends when the stream closes" \
    wait_for 2 eval '! kill -0 $CAT2 2>/dev/null'
reap $CAT1
check "cat 1 exited 0 (end of file)" test $? -eq 0
reap $CAT2
check "cat 2 exited 0 (end of file)" test $? -eq 0
check "cat 1 got every byte to the end" cmp "$T/cat1.out" "$T/expected"
check "cat 2 got every byte to the end" cmp "$T/cat2.out" "$T/expected"
check "closed stream's directory is gone" wait_for 2 test ! -e "$S"
exec 3>&-

# --- timeout 2 cat ends at ~2 s (FUSE interrupt → EINTR)
new_stream 4 "tail_file host $F" || exit 1
S=$MP/streams/$ID
t0=$(now_ms)
timeout 2 cat "$S/data" >/dev/null
rc=$?
dt=$(($(now_ms) - t0))
check "timeout 2 cat: rc 124 (got $rc)" test $rc -eq 124
check "timeout 2 cat: ended in ~2 s (got ${dt} ms)" \
    test $dt -ge 1900 -a $dt -lt 2600

# --- an interrupted read fails with EINTR (a handler without SA_RESTART
# sees it), and the reader goes on: the next read gets the next bytes
out=$("$PROBE" eintr "$S/data" "$MP/ctl" "$F" "after the signal" \
    "after the signal")
check "interrupted data read: EINTR, then the appended bytes ($out)" \
    test $? -eq 0
check "interrupted data read: EINTR reported" grep -q '^EINTR after' <<<"$out"

# --- SIGINT ends a blocked cat at once
env --default-signal=INT cat "$S/data" >/dev/null &
CAT=$!
PIDS+=($CAT)
need "the reader is attached" wait_for 2 eval 'grep -q "^readers: 1" "$S/info"'
need "the read is parked" wait_for 2 eval 'grep -q "^parked: [1-9]" "$MP/ctl"'
t0=$(now_ms)
kill -INT $CAT
check "SIGINT ends a blocked cat" wait_for 2 eval '! kill -0 $CAT 2>/dev/null'
dt=$(($(now_ms) - t0))
check "SIGINT ends a blocked cat within 500 ms (got ${dt} ms)" test $dt -lt 500
reap $CAT
check "SIGINT: cat died of the signal (rc $?)" test $? -eq 130
check "no process of this test in D state" no_d_state

# --- rmdir closes; a blocked reader gets EOF
cat "$S/data" >"$T/rmdir.out" 4>&- &
CAT=$!
PIDS+=($CAT)
need "the reader is attached" wait_for 2 eval 'grep -q "^readers: 1" "$S/info"'
check "rmdir streams/ID" rmdir "$S"
check "rmdir: directory gone" test ! -e "$S"
check "rmdir: blocked reader ends" \
    wait_for 2 eval '! kill -0 $CAT 2>/dev/null'
reap $CAT
check "rmdir: the reader got end of file (cat exited $?)" test $? -eq 0
check "rmdir: the reader got the stream's bytes" \
    eval '[ "$(cat "$T/rmdir.out")" = "after the signal" ]'
exec 4>&-

# --- a stream that ends (file deleted): a reader blocked at its end gets
# end of file when it ends, and so does a reader that comes later
G=$T/gone.log
echo "bye" >"$G"
new_stream 5 "tail_file host $G start=beginning" || exit 1
S=$MP/streams/$ID
printf 'bye\n' >"$T/bye.expected"
cat "$S/data" >"$T/bye.out" 5>&- &
CAT=$!
PIDS+=($CAT)
need "the reader has the file's bytes and waits for more" \
    wait_for 2 eval 'cmp -s "$T/bye.out" "$T/bye.expected" &&
                     grep -q "^parked: 1" "$MP/ctl"'
rm -f "$G"
check "deleted file: the blocked cat ends" \
    wait_for 5 eval '! kill -0 $CAT 2>/dev/null'
reap $CAT
check "deleted file: the blocked cat got end of file (exit status $?)" \
    test $? -eq 0
check "deleted file: it got exactly the file's bytes" \
    cmp "$T/bye.out" "$T/bye.expected"
check "deleted file: state ended" \
    wait_for 2 grep -q "^state: ended" "$S/info"
timeout 5 cat "$S/data" >"$T/bye.late"
check "deleted file: a later cat reaches end of file (exit status $?, not killed)" \
    test $? -eq 0
check "deleted file: it got exactly the file's bytes" \
    cmp "$T/bye.late" "$T/bye.expected"
exec 5>&-
