#!/usr/bin/env bash
# agent_kill.sh - the host agent SIGKILLed under parked readers
# (issue 10): the bytes that arrived before the kill are intact, then the
# readers get an error (not a clean end of file); the daemon logs the
# crash; a new agent is spawned and new opens work.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

start_fs
seq 1 1000 >"$T/app.log"
new_stream 4 "tail_file host $T/app.log start=beginning keep" || exit 1
TAIL=$ID
cat "$MP/streams/$TAIL/data" >"$T/tail.out" 2>"$T/tail.err" 4>&- &
CAT1=$!
PIDS+=($CAT1)
exec 3<>"$MP/vms/host/ctl"
exec_pid host 3 'exec -- sh -c "echo $$; seq 1 500; exec sleep 2001"' || exit 1
new_stream 5 "proc_stdout_stream host $P keep" || exit 1
PROC=$ID
cat "$MP/streams/$PROC/data" >"$T/proc.out" 2>"$T/proc.err" 4>&- 5>&- &
CAT2=$!
PIDS+=($CAT2)
check "readers have everything so far and are parked" \
    wait_for 5 eval '[ "$(wc -l <"$T/tail.out")" = 1000 ] && [ "$(wc -l <"$T/proc.out")" = 501 ] && grep -q "^parked: [2-9]" "$MP/ctl"'

AG=$(host_agent)
kill -9 "$AG"
check "both readers end" \
    wait_for 5 eval '! kill -0 $CAT1 2>/dev/null && ! kill -0 $CAT2 2>/dev/null'
wait $CAT1
rc1=$?
wait $CAT2
rc2=$?
check "tail reader: an error, not end of file (rc $rc1: $(cat "$T/tail.err"))" \
    test $rc1 -ne 0
check "proc reader: an error, not end of file (rc $rc2: $(cat "$T/proc.err"))" \
    test $rc2 -ne 0
check "tail reader: the bytes before the kill, intact" \
    cmp -s "$T/tail.out" "$T/app.log"
check "proc reader: the bytes before the kill, intact" \
    eval '[ "$(tail -n +2 "$T/proc.out")" = "$(seq 1 500)" ]'
check "the streams say why" \
    grep -q "^error: .*agent connection lost" "$MP/streams/$TAIL/info"
check "the daemon logged the lost connection with the VM's name" \
    grep -q "vm \`host\`: agent connection lost: agent closed the connection" "$T/fs.err"
check "the process the agent ran is gone too" wait_for 5 dead "$PID"

check "a new agent comes up" \
    wait_for 5 eval '[ "$(agent_state_of host)" = up ] && [ -n "$(host_agent)" ] && [ "$(host_agent)" != "$AG" ]'
check "agent_last_error tells of the crash" \
    grep -q "^agent_last_error: agent closed the connection (agent pid $AG killed by signal 9" \
    "$MP/vms/host/info"
new_stream 6 "tail_file host $T/app.log" || exit 1
echo after >>"$T/app.log"
check "new opens work and flow" \
    eval '[ "$(timeout 5 head -c 6 "$MP/streams/$ID/data")" = after ]'
ctl_cmd 4 close
ctl_cmd 5 close
exec 3>&- 4>&- 5>&- 6>&-
