#!/usr/bin/env bash
# procs_lifetime.sh - processes never outlive their agent session
# (SPEC §6.4, issue 10 item 4): every process group started with `exec`
# is ended (TERM, 2 s, KILL) when the agent is killed, when the daemon
# is stopped (SIGTERM, unmount) or killed, and when a VM is removed. A
# process that ignores SIGTERM is KILLed after the grace period. Checked
# by pid; a zombie counts as gone.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

# Two processes per case: one that ends on TERM, one that ignores it.
start_two() { # start_two VM FD
    exec_pid "$1" "$2" 'exec -- sh -c "echo $$; exec sleep 2001"' || return 1
    A=$PID
    exec_pid "$1" "$2" 'exec -- sh -c "trap \"\" TERM; echo $$; sleep 2002; sleep 2003"' || return 1
    B=$PID
    alive "$A" && alive "$B"
}

gone_within() { # gone_within SECONDS LABEL
    local t0=$(now_ms)
    wait_for "$1" eval 'dead $A && dead $B'
    local ok=$? dt=$(($(now_ms) - t0))
    check "$2: both processes gone ($A, $B; ${dt} ms)" test $ok -eq 0
}

# --- the host agent is SIGKILLed: its keeper ends the groups
start_fs
exec 3<>"$MP/vms/host/ctl"
check "agent kill: processes started" start_two host 3
AG=$(host_agent)
kill -9 "$AG"
gone_within 5 "agent SIGKILL"
check "agent kill: the daemon logged the crash with the VM's name" \
    wait_for 5 grep -q "vm \`host\`: agent (pid $AG) killed by signal 9" "$T/fs.err"
check "agent kill: a new agent comes up" \
    wait_for 5 eval '[ "$(agent_state_of host)" = up ] && [ "$(host_agent)" != "$AG" ]'
check "agent kill: agent_last_error keeps the crash" \
    grep -q "^agent_last_error: .*killed by signal 9" "$MP/vms/host/info"
ctl_cmd 3 'exec -- echo again'
check "agent kill: exec works on the new agent ($STATUS)" test "$STATUS" = ok

# --- daemon SIGTERM: it lets the host agent end them before it goes
check "SIGTERM: processes started" start_two host 3
exec 3>&-
t0=$(now_ms)
stop_fs
dt=$(($(now_ms) - t0))
check "SIGTERM: both processes gone when the daemon has exited ($dt ms)" \
    eval 'dead $A && dead $B'
check "SIGTERM: within the grace period and a bound ($dt ms)" test $dt -lt 6000

# --- unmount: the same
start_fs
exec 3<>"$MP/vms/host/ctl"
check "unmount: processes started" start_two host 3
exec 3>&-
fusermount3 -u "$MP"
wait_for 10 eval '! kill -0 $FS_PID 2>/dev/null'
check "unmount: both processes gone when the daemon has exited" \
    eval 'dead $A && dead $B'
wait "$FS_PID" 2>/dev/null
FS_PID=

# --- daemon SIGKILL: the host agent's parent is gone (PR_SET_PDEATHSIG,
# and end of file on its connection): it ends them, then itself
start_fs
exec 3<>"$MP/vms/host/ctl"
check "daemon SIGKILL: processes started" start_two host 3
AG=$(host_agent)
exec 3>&-
kill -9 "$FS_PID"
wait "$FS_PID" 2>/dev/null
FS_PID=
gone_within 5 "daemon SIGKILL"
check "daemon SIGKILL: the host agent is gone too" wait_for 5 dead "$AG"
fusermount3 -u "$MP" 2>/dev/null

# --- vm del of a guest VM: the daemon asks its agent to end the
# processes started through the mount; the agent itself lives on
listen_agent g
start_fs --no-host --vm "g=unix:$T/g.sock"
wait_for 5 eval '[ "$(agent_state_of g)" = up ]'
exec 3<>"$MP/vms/g/ctl"
check "vm del: processes started" start_two g 3
exec 3>&-
exec 5<>"$MP/ctl"
ctl_cmd 5 "vm del g"
check "vm del: ok" test "$STATUS" = ok
gone_within 5 "vm del"
check "vm del: the guest's agent is still running" alive "$AGENT_PID"
exec 5>&-
