#!/usr/bin/env bash
# proc_output.sh - process output that cannot be recorded is never
# lost in silence (SPEC §6.3, issue 10 item 2): with the spool full (the
# agent's, the daemon's) or the agent's per-process cap reached, the
# process still runs to its end (not blocked, not killed by SIGPIPE),
# its output streams end with an error naming the cause after the bytes
# that were recorded, and `wait` (and procs/N/status) say so.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

# --- 0. Nothing lost: when `wait` answers, procs/N/stdout already holds
# everything the process wrote, even when it wrote much faster than the
# agent could send (the mount waits for the output to arrive). A fresh
# mount each time, so that the spools (200 MB) are freed.
for i in 1 2 3; do
    start_fs
    exec 3<>"$MP/vms/host/ctl"
    ctl_cmd 3 'exec -- sh -c "seq 1 1000 >&2; exec head -c 100000000 /dev/zero"'
    P=$PAYLOAD
    ctl_cmd 3 "wait $P 15s"
    check "complete $i: wait answers ok ($STATUS $PAYLOAD)" \
        test "$STATUS" = ok -a "$PAYLOAD" = "exit 0"
    n=$(stat -c %s "$MP/vms/host/procs/$P/stdout")
    check "complete $i: at that moment stdout is all there ($n)" \
        test "$n" = 100000000
    check "complete $i: ... and stderr" \
        test "$(stat -c %s "$MP/vms/host/procs/$P/stderr")" = "$(seq 1 1000 | wc -c)"
    exec 3>&-
    stop_fs
done

# --- 1. The host VM, daemon and agent sharing a 16 MiB spool: 22.9 MB of
# output does not fit.
small_tmpfs "$T/small" 16m
start_fs --spool-dir "$T/small"
exec 3<>"$MP/vms/host/ctl"
ctl_cmd 3 'exec -- sh -c "seq 1 3000000; echo END"'
P=$PAYLOAD
ctl_cmd 3 "wait $P 15s"
check "spool full: wait answers error, not ok ($STATUS: $PAYLOAD)" \
    test "$STATUS" = error
check "spool full: the process exited normally (not SIGPIPE, not blocked)" \
    eval '[[ "$PAYLOAD" == "exit 0; stdout not recorded past "* ]]'
check "spool full: the cause is named" \
    eval '[[ "$PAYLOAD" == *"No space left on device"* ]]'
check "spool full: procs/N/status says the same" \
    test "$(cat "$MP/vms/host/procs/$P/status")" = "$PAYLOAD"
N=$(sed -n 's/.*not recorded past \([0-9]*\) bytes.*/\1/p' <<<"$PAYLOAD")
check "spool full: procs/N/stdout holds the $N bytes recorded" \
    test "$(stat -c %s "$MP/vms/host/procs/$P/stdout")" = "$N"
# A stream of that output: the recorded bytes, intact, then an error.
new_stream 4 "proc_stdout_stream host $P" || exit 1
timeout 10 cat "$MP/streams/$ID/data" >"$T/out" 2>"$T/cat.err"
rc=$?
check "spool full: the stream's reader gets an error, not a clean end (rc $rc)" \
    test $rc -ne 0 -a $rc -ne 124
check "spool full: ... after the recorded bytes, intact" \
    cmp -s "$T/out" <(seq 1 3000000 | head -c "$(stat -c %s "$T/out")")
check "spool full: the stream's info names the cause" \
    grep -q "^error: .*No space left on device" "$MP/streams/$ID/info"
exec 4>&- 3>&-
stop_fs

# --- 2. The daemon's spool full, the agent's not (a VM with its own
# agent): the daemon's history ends early, and wait says so.
small_tmpfs "$T/tiny" 1m
head -c 1000000 /dev/zero >"$T/tiny/fill" 2>/dev/null
listen_agent g
start_fs --no-host --spool-dir "$T/tiny" --vm "g=unix:$T/g.sock"
wait_for 5 eval '[ "$(agent_state_of g)" = up ]'
exec 3<>"$MP/vms/g/ctl"
ctl_cmd 3 'exec -- sh -c "seq 1 700000"'
P=$PAYLOAD
ctl_cmd 3 "wait $P 15s"
check "daemon spool full: wait answers error ($STATUS: $PAYLOAD)" \
    test "$STATUS" = error
check "daemon spool full: names the daemon's history as the cause" \
    eval '[[ "$PAYLOAD" == "exit 0; stdout not recorded past "*"history spool write failed: No space left on device (the spool file system is full)" ]]'
check "daemon spool full: procs/N/status says the same" \
    test "$(cat "$MP/vms/g/procs/$P/status")" = "$PAYLOAD"
exec 3>&-
stop_fs
rm -f "$T/tiny/fill"

# --- 3. The agent's per-process cap (--proc-spool-max): the process is
# not blocked on its full pipe; stdout stops being recorded at the cap,
# stderr (under the cap) is complete.
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
listen_agent h --proc-spool-max 1048576
start_fs --no-host --vm "h=unix:$T/h.sock"
wait_for 5 eval '[ "$(agent_state_of h)" = up ]'
exec 3<>"$MP/vms/h/ctl"
ctl_cmd 3 'exec -- sh -c "seq 1 3000000; echo END >&2"'
P=$PAYLOAD
t0=$(now_ms)
ctl_cmd 3 "wait $P 15s"
check "cap: the process ran to its end, not blocked ($(($(now_ms) - t0)) ms)" \
    test "$STATUS" != timeout
check "cap: wait answers error naming the cap ($PAYLOAD)" \
    test "$STATUS" = error -a "$PAYLOAD" = \
    "exit 0; stdout not recorded past 1048576 bytes: --proc-spool-max reached"
check "cap: stderr, under the cap, is whole" \
    test "$(cat "$MP/vms/h/procs/$P/stderr")" = END
new_stream 4 "proc_stdout_stream h $P" || exit 1
timeout 10 cat "$MP/streams/$ID/data" >"$T/out" 2>"$T/cat.err"
rc=$?
check "cap: the stream ends with an error (rc $rc: $(cat "$T/cat.err"))" \
    grep -q "File too large" "$T/cat.err"
check "cap: after exactly the 1048576 recorded bytes" \
    test "$(stat -c %s "$T/out")" = 1048576
ctl_cmd 4 "drain 1s"
ctl_cmd 4 "next 1s"
check "cap: the stream's next op says why ($STATUS: $PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"stdout not recorded past 1048576 bytes: --proc-spool-max reached"* ]]'
exec 4>&- 3>&-
check "cap: the agent logged it" grep -q "not recorded past 1048576" "$T/h.err"
