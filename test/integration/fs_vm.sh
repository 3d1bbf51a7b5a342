#!/usr/bin/env bash
# fs_vm.sh - VMs (SPEC §3 vms/, §5.3, §5.4): commands on the host VM,
# processes and their files, agent file handles, quiesce, vm add / vm del
# of a VM whose agent listens on a Unix socket.
. "$(dirname "$0")/lib.sh"

start_fs
exec 3<>"$MP/vms/host/ctl"

# --- exec / wait / procs files
ctl_cmd 3 'exec cwd=/tmp env=GREETING=hi -- sh -c "echo $GREETING out; echo err >&2; exit 3"'
need "exec: ok with a proc id ($STATUS $PAYLOAD)" \
    eval '[ "$STATUS" = ok ] && [[ "$PAYLOAD" =~ ^[0-9]+$ ]]'
P=$PAYLOAD
ctl_cmd 3 "wait $P 5s"
check "wait: exit 3 ($PAYLOAD)" test "$STATUS" = ok -a "$PAYLOAD" = "exit 3"
PD=$MP/vms/host/procs/$P
check "procs/N/status" wait_for 2 eval '[ "$(cat "$PD/status")" = "exit 3" ]'
check "procs/N/cmdline" grep -q '^sh -c echo \$GREETING out' "$PD/cmdline"
check "procs/N/stdout" wait_for 2 eval '[ "$(cat "$PD/stdout")" = "hi out" ]'
check "procs/N/stderr" wait_for 2 eval '[ "$(cat "$PD/stderr")" = err ]'
check "procs lists it" eval 'ls "$MP/vms/host/procs" | grep -qx "$P"'

# --- a stdout stream opened after the process ended replays it all, to
# its end of file
new_stream 4 "proc_stdout_stream host $P" || exit 1
timeout 5 cat "$MP/streams/$ID/data" >"$T/stdout.out"
check "proc_stdout_stream: cat reaches end of file (exit status $?)" \
    test $? -eq 0
printf 'hi out\n' >"$T/stdout.expected"
check "proc_stdout_stream replays every byte from byte 0" \
    cmp "$T/stdout.out" "$T/stdout.expected"
exec 4>&-

# --- kill, and wait with a timeout
ctl_cmd 3 "exec -- sleep 100"
need "exec sleep: a proc id ($PAYLOAD)" eval '[[ "$PAYLOAD" =~ ^[0-9]+$ ]]'
P=$PAYLOAD
ctl_cmd 3 "wait $P 200ms"
check "wait with timeout: timeout ($PAYLOAD)" test "$STATUS" = timeout
ctl_cmd 3 "kill $P KILL"
check "kill: ok" test "$STATUS" = ok
ctl_cmd 3 "wait proc#$P 5s"
check "wait after kill: signal 9" test "$PAYLOAD" = "signal 9"

# --- stdin
ctl_cmd 3 "exec -- cat"
need "exec cat: a proc id ($PAYLOAD)" eval '[[ "$PAYLOAD" =~ ^[0-9]+$ ]]'
P=$PAYLOAD
ctl_cmd 3 "stdin $P \"to cat\\n\""
check "stdin: bytes written" test "$STATUS" = ok -a "$PAYLOAD" = 7
ctl_cmd 3 "stdin_close $P"
check "stdin_close: ok" test "$STATUS" = ok
ctl_cmd 3 "wait $P 5s"
check "cat exited after stdin_close" test "$PAYLOAD" = "exit 0"
check "its stdout" wait_for 2 eval '[ "$(cat "$MP/vms/host/procs/$P/stdout")" = "to cat" ]'

# --- agent file handles
ctl_cmd 3 "open $T/f.txt write create truncate"
H=$PAYLOAD
check "open: a handle" eval '[[ "$H" =~ ^[0-9]+$ ]]'
ctl_cmd 3 "write $H \"abc\\x00def\""
check "write: 7 bytes" test "$PAYLOAD" = 7
ctl_cmd 3 "close $H"
check "close: ok" test "$STATUS" = ok
ctl_cmd 3 "open $T/f.txt read"
need "open for reading: a handle ($PAYLOAD)" eval '[[ "$PAYLOAD" =~ ^[0-9]+$ ]]'
H=$PAYLOAD
ctl_cmd 3 "seek $H 4"
check "seek: offset 4" test "$PAYLOAD" = 4
ctl_cmd 3 "read $H 10"
check "read: def" test "$STATUS" = ok -a "$PAYLOAD" = def
ctl_cmd 3 "seek $H 0"
ctl_cmd 3 "read $H 10"
check "read: binary-safe, 7 bytes with a NUL" \
    eval '[ "$STATUS" = ok ] && printf "abc\0def" | cmp -s - "$T/payload"' 
check "info counts the open handle" grep -q "^handles: 1" "$MP/vms/host/info"
ctl_cmd 3 "close file#$H"
check "close file#N: ok" test "$STATUS" = ok
ctl_cmd 3 "open /nonexistent/x read"
check "open of a missing file: error ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"No such file"* ]]'

# --- quiesce: refused while a stream is live, with SPEC §7's text
ctl_cmd 3 "quiesce"
check "quiesce with nothing open: ok" test "$STATUS" = ok
new_stream 4 "tail_file host $T/f.txt site=boot.test.lua:12 test=boot" || exit 1
ctl_cmd 3 "quiesce"
expected="vm:snapshot() failed for \`host\`: 0 open file handle(s), 1 open stream(s)
  - tail_file(\"$T/f.txt\") created at boot.test.lua:12 (test \"boot\")
  Close streams before snapshotting."
check "quiesce refusal text" test "$STATUS" = error -a "$PAYLOAD" = "$expected"
exec 4>&-
check "malformed VM command: write fails" \
    eval '! printf "exec\n" >&3 2>/dev/null'
ctl_reply 3
check "malformed VM command: error reply ($PAYLOAD)" test "$STATUS" = error
exec 3>&-

# --- vm add / vm del with an agent on a Unix socket
"$AGENT_BIN" --listen "unix:$T/agent.sock" --spool-dir "$T" 2>"$T/agent.err" &
PIDS+=($!)
need "the agent listens" wait_for 5 test -S "$T/agent.sock"
exec 5<>"$MP/ctl"
ctl_cmd 5 "vm add vm1 agent=unix:$T/agent.sock nic=tap-vm1"
check "vm add: ok ($PAYLOAD)" test "$STATUS" = ok
check "vms/vm1 appears" test -d "$MP/vms/vm1"
check "vm1's agent comes up" \
    wait_for 5 grep -q "^agent_state: up" "$MP/vms/vm1/info"
ctl_cmd 5 "vm add vm1 agent=unix:$T/agent.sock"
check "vm add of an existing name: error" test "$STATUS" = error
check "vm add with a bad endpoint: EINVAL" \
    eval '! printf "vm add vm2 agent=tcp:1.2.3.4\n" >&5 2>/dev/null'
ctl_reply 5
check "vm add with a bad endpoint: error reply ($PAYLOAD)" test "$STATUS" = error
echo "from vm1" >"$T/vm1.log"
new_stream 6 "tail_file vm1 $T/vm1.log start=beginning keep" || exit 1
S=$MP/streams/$ID
cat "$S/data" >"$T/vm1.out" 6>&- &
CAT=$!
PIDS+=($CAT)
check "a vm1 stream flows" wait_for 2 grep -q "from vm1" "$T/vm1.out"
check "vms/vm1/streams lists it" grep -q "tail_file" "$MP/vms/vm1/streams"
ctl_cmd 5 "vm del vm1"
check "vm del: ok" test "$STATUS" = ok
check "vm del: vms/vm1 gone" test ! -e "$MP/vms/vm1"
check "vm del: its stream is gone" test ! -e "$S"
check "vm del: its reader ended" wait_for 2 eval '! kill -0 $CAT 2>/dev/null'
reap $CAT
check "vm del: its reader got end of file (cat exited $?)" test $? -eq 0
check "vm del: its reader got the bytes" \
    test "$(cat "$T/vm1.out")" = "from vm1"
ctl_cmd 6 "next 100ms"
check "vm del: the stream's ops answer closed" test "$STATUS" = closed
exec 5>&- 6>&-
