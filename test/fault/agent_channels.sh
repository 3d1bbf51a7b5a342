#!/usr/bin/env bash
# agent_channels.sh - the agent's channel limit (issue 12 item 5): an
# option (--max-channels, default 65536) with a clear error at the limit
# that reaches the user through the daemon; the slot stays unopened and
# the VM serves on; a channel freed is a channel available. The agent
# raises its soft descriptor limit (each tail holds its file open).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

for bad in 0 -1 x 16777217; do
    "$AGENT_BIN" --stdio --max-channels "$bad" </dev/null >/dev/null 2>"$T/bad.err"
    rc=$?
    check "--max-channels $bad refused (exit $rc): $(cat "$T/bad.err")" \
        eval '[ $rc -eq 2 ] && grep -q "^provium-agent: --max-channels: .$bad. is not a number from 1 to 16777216$" "$T/bad.err"'
done

# Started with a soft limit below the hard one (exec: the same pid).
mkdir -p "$T/g.spool"
bash -c 'ulimit -Sn 256 && exec "$0" "$@"' "$AGENT_BIN" --listen "unix:$T/g.sock" \
    --spool-dir "$T/g.spool" --max-channels 2 2>>"$T/g.err" &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
need "the agent listens" wait_for 5 test -S "$T/g.sock"
check "the agent raised its soft descriptor limit to the hard one ($(grep "^Max open files" /proc/$AGENT_PID/limits))" \
    eval '[ "$(awk "/^Max open files/ { print (\$4 == \$5 && \$4 > 256) }" /proc/$AGENT_PID/limits)" = 1 ]'
start_fs --no-host --vm "g=unix:$T/g.sock"
check "g's agent is up" wait_for 5 grep -q "^agent_state: up" "$MP/vms/g/info"
for i in 1 2 3; do : >"$T/f$i"; done
new_stream 3 "tail_file g $T/f1 keep" || exit 1
A=$ID
new_stream 4 "tail_file g $T/f2 keep" || exit 1
ID=$(cat "$MP/clone")
exec 5<>"$MP/streams/$ID/ctl"
ctl_cmd 5 "tail_file g $T/f3"
msg="too many channels: this agent serves at most 2 at once (provium-agent --max-channels)"
check "the third open: an error naming the limit and the option ($STATUS $PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"$msg"* ]]'
check "the slot stays unopened" grep -q "^state: unopened" "$MP/streams/$ID/info"
echo one >>"$T/f1"
check "the open streams flow on" \
    wait_for 5 eval '[ "$(cat "$MP/streams/$A/log")" = one ]'
check "the agent is still up" grep -q "^agent_state: up" "$MP/vms/g/info"

# A channel freed is a channel available.
ctl_cmd 3 close
exec 3>&-
ctl_cmd 5 "tail_file g $T/f3"
check "after a close the third opens ($STATUS $PAYLOAD)" test "$STATUS" = ok
echo three >>"$T/f3"
check "and flows" wait_for 5 eval '[ "$(cat "$MP/streams/$ID/log")" = three ]'
exec 4>&- 5>&-
stop_fs
