#!/usr/bin/env bash
# agent_deadline.sh - every request to an agent and its handshake
# have a deadline (SPEC §6.3, issue 10 item 9; --agent-timeout, 1 s here
# so that the test is quick): a stopped agent, one that handshakes and
# then ignores requests, and one that never handshakes are reported
# (the op's error, agent_state), never hang their callers, and a
# connection whose handshake does not complete is retried.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

# deadline_error LABEL T0: the op failed with the deadline error, in time.
deadline_error() {
    local dt=$(($(now_ms) - $2))
    check "$1: fails with the deadline error ($STATUS: $PAYLOAD)" \
        eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"the agent did not answer within 1s"* ]]'
    check "$1: after the timeout, not much later ($dt ms)" \
        test $dt -ge 900 -a $dt -lt 3000
}

# --- the host agent SIGSTOPped
start_fs --agent-timeout 1s
exec 3<>"$MP/vms/host/ctl"
ctl_cmd 3 'exec -- sh -c "echo $$"'
check "before: exec works" test "$STATUS" = ok
ctl_cmd 3 'exec -- sleep 2005'
check "before: a long process runs ($PAYLOAD)" test "$STATUS" = ok
LONG=$PAYLOAD
AG=$(host_agent)
kill -STOP "$AG"
t0=$(now_ms)
ctl_cmd_within 5 3 'exec -- sh -c "echo late; exec sleep 2004"'
deadline_error "stopped agent: exec" "$t0"
check "stopped agent: agent_state says unresponsive" \
    test "$(agent_state_of host)" = unresponsive
check "stopped agent: the daemon logged it" \
    grep -q "vm \`host\`: unresponsive: the agent did not answer" "$T/fs.err"
ID=$(cat "$MP/clone")
exec 4<>"$MP/streams/$ID/ctl"
t0=$(now_ms)
ctl_cmd_within 5 4 "tail_file host /etc/hostname"
deadline_error "stopped agent: a stream open" "$t0"
check "stopped agent: the open names the stream" \
    eval '[[ "$PAYLOAD" == "tail_file /etc/hostname: "* ]]'
t0=$(now_ms)
ctl_cmd_within 5 3 "kill 1 TERM"
deadline_error "stopped agent: kill" "$t0"
# wait is exempt: it waits for the process, for T (the daemon's own wait
# on the agent, behind every process started through the mount, has no
# deadline either, or it would fail at 1 s).
t0=$(now_ms)
ctl_cmd_within 5 3 "wait $LONG 1500ms"
dt=$(($(now_ms) - t0))
check "stopped agent: wait is exempt: it times out at its own T ($STATUS, $dt ms)" \
    test "$STATUS" = timeout -a $dt -ge 1400
kill -CONT "$AG"
check "resumed agent: agent_state back to up" \
    wait_for 5 eval '[ "$(agent_state_of host)" = up ]'
check "resumed agent: the exec that timed out did not leave its process" \
    wait_for 5 eval '! pgrep -f "sleep 2004" >/dev/null'
check "resumed agent: that was logged" \
    grep -q "killed proc#.*its exec had timed out" "$T/fs.err"
ctl_cmd 4 "tail_file host /etc/hostname"
check "resumed agent: opens work ($STATUS $PAYLOAD)" test "$STATUS" = ok
exec 4>&- 3>&-
stop_fs

# --- an agent that handshakes, then ignores every request
"$FAULT_AGENT" "$T/mute.sock" mute >"$T/mute.out" &
PIDS+=($!)
wait_for 5 test -S "$T/mute.sock"
# --- and one that never even answers the handshake
"$FAULT_AGENT" "$T/silent.sock" silent >"$T/silent.out" &
PIDS+=($!)
wait_for 5 test -S "$T/silent.sock"
start_fs --no-host --agent-timeout 1s --vm "mute=unix:$T/mute.sock" \
    --vm "silent=unix:$T/silent.sock"
check "mute agent: up (it handshakes)" \
    wait_for 5 eval '[ "$(agent_state_of mute)" = up ]'
exec 3<>"$MP/vms/mute/ctl"
t0=$(now_ms)
ctl_cmd_within 5 3 'exec -- true'
deadline_error "mute agent: exec" "$t0"
check "mute agent: unresponsive" test "$(agent_state_of mute)" = unresponsive
exec 3>&-
check "silent agent: the handshake deadline drops the connection" \
    wait_for 5 grep -q "^agent_error: the agent did not complete the handshake within 1s" \
    "$MP/vms/silent/info"
check "silent agent: ... and it is retried (a second connection)" \
    wait_for 5 eval '[ "$(grep -c accepted "$T/silent.out")" -ge 2 ]'
