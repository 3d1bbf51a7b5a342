#!/usr/bin/env bash
# fs_ids.sh - process and handle ids are never reused within a VM's life
# in the mount, across agent restarts; an id from an earlier agent session
# answers ESTALE "from an earlier agent session", never another object;
# quiesce and info count only the current session's handles (SPEC §6.4;
# issue 10 item 5). A guest agent that outlives a host reconnect (same
# instance) keeps its ids.
. "$(dirname "$0")/lib_fs.sh"

start_fs
exec 3<>"$MP/vms/host/ctl"
echo first >"$T/a.txt"
echo second >"$T/b.txt"

# --- the host agent is killed and respawned: a new agent session
ctl_cmd 3 "exec -- sh -c \"echo \$\$ >$T/sleep.pid; exec sleep 1000\""
P1=$PAYLOAD
check "exec: proc 1 ($STATUS $P1)" test "$STATUS $P1" = "ok 1"
wait_for 5 test -s "$T/sleep.pid" && FS_CLEANUPS+=("kill -9 $(cat "$T/sleep.pid") 2>/dev/null")
ctl_cmd 3 "open $T/a.txt read"
H1=$PAYLOAD
check "open: handle 1 ($STATUS $H1)" test "$STATUS $H1" = "ok 1"
inst0=$(sed -n 's/^agent_instance: //p' "$MP/vms/host/info")
apid=$(host_agent_pid)
check "the host agent runs ($apid, instance $inst0)" test -n "$apid" -a -n "$inst0"
kill -9 "$apid"
check "the host agent comes back with another instance" \
    wait_for 10 eval 'grep -q "^agent_state: up" "$MP/vms/host/info" &&
        ! grep -q "^agent_instance: $inst0\$" "$MP/vms/host/info"'

ctl_cmd 3 "exec -- true"
P2=$PAYLOAD
check "exec after the restart: a new id, not 1 ($STATUS $P2)" \
    test "$STATUS $P2" = "ok 2"
procs=$(ls "$MP/vms/host/procs" | sort -n | tr '\n' ' ')
check "procs lists each id once ($procs)" test "$procs" = "1 2 "
ctl_cmd 3 "kill $P1"
check "kill of an earlier session's process: ESTALE ($PAYLOAD)" \
    test "$STATUS" = error -a \
    "$PAYLOAD" = "kill: proc#1: Stale file handle (from an earlier agent session)"
ctl_cmd 3 "wait proc#$P1 1s"
check "wait on it: ESTALE ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"from an earlier agent session)" ]]'
ctl_cmd 3 "quiesce"
check "quiesce does not count the dead session's handle ($STATUS $PAYLOAD)" \
    test "$STATUS" = ok
check "info counts no handle" grep -q "^handles: 0$" "$MP/vms/host/info"

ctl_cmd 3 "open $T/b.txt read"
H2=$PAYLOAD
check "open after the restart: a new handle, not 1 ($STATUS $H2)" \
    test "$STATUS $H2" = "ok 2"
ctl_cmd 3 "read $H1 100"
check "read of the old handle: ESTALE, not b.txt's bytes ($STATUS $PAYLOAD)" \
    test "$STATUS" = error -a \
    "$PAYLOAD" = "read: file#1: Stale file handle (from an earlier agent session)"
ctl_cmd 3 "read $H2 100"
check "the new handle reads b.txt ($PAYLOAD)" test "$STATUS $PAYLOAD" = "ok second"
open_reply 4 "fd_stream host $H1"
check "fd_stream of the old handle: ESTALE ($PAYLOAD)" \
    test "$STATUS" = error -a \
    "$PAYLOAD" = "fd_stream: file#1: Stale file handle (from an earlier agent session)"
exec 4>&-
open_reply 4 "proc_stdout_stream host $P1"
check "proc_stdout_stream of the old process: ESTALE ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"proc#1: Stale file handle (from an earlier agent session)" ]]'
exec 4>&-
ctl_cmd 3 "close 7"
check "an id never given: EBADF ($PAYLOAD)" \
    test "$PAYLOAD" = "close: file#7: Bad file descriptor"
ctl_cmd 3 "close $H2"
ctl_cmd 3 "close $H2"
check "a closed handle: EBADF ($PAYLOAD)" \
    test "$PAYLOAD" = "close: file#2: Bad file descriptor"
exec 3>&-

# --- the connection breaks, the agent lives on: the same instance
start_agent "$T/g.sock"
start_relay "$T/relay.sock" "$T/g.sock"
exec 5<>"$MP/ctl"
vm_add 5 g "agent=unix:$T/relay.sock" || exit 1
exec 6<>"$MP/vms/g/ctl"
ctl_cmd 6 "exec -- sleep 1000"
GP=$PAYLOAD
ctl_cmd 6 "open $T/a.txt read"
GH=$PAYLOAD
inst=$(sed -n 's/^agent_instance: //p' "$MP/vms/g/info")
kill -9 "$RELAY_PID"
check "the relay's death takes the connection down" \
    wait_for 5 eval '! grep -q "^agent_state: up" "$MP/vms/g/info"'
start_relay "$T/relay.sock" "$T/g.sock"
check "the daemon reconnects to the same agent instance" \
    wait_for 10 eval 'grep -q "^agent_state: up" "$MP/vms/g/info" &&
        grep -q "^agent_instance: $inst\$" "$MP/vms/g/info"'
ctl_cmd 6 "read $GH 100"
check "the handle still reads a.txt ($STATUS $PAYLOAD)" \
    test "$STATUS $PAYLOAD" = "ok first"
check "quiesce still counts it" grep -q "^handles: 1$" "$MP/vms/g/info"
ctl_cmd 6 "kill $GP KILL"
check "the process is still reachable: kill ok ($STATUS $PAYLOAD)" \
    test "$STATUS" = ok
check "its status is waited for again: signal 9" \
    wait_for 5 eval '[ "$(cat "$MP/vms/g/procs/$GP/status")" = "signal 9" ]'
exec 5>&- 6>&-
