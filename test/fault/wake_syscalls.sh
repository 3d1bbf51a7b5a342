#!/usr/bin/env bash
# wake_syscalls.sh - the wake-up path does no syscall that moves no bytes
# (issue 12 item 3), counted with strace on the real agent and daemon
# while a reader parked on `data` is woken by appends to the tailed file,
# one append at a time:
#   agent:  one inotify event and one pread of the file per append (no
#           directory event, no second pread after a short one, no fstat,
#           no stat of the file's path on its own IN_MODIFY), no read of
#           its host socket that says EAGAIN;
#   daemon: no read of the agent's socket that says EAGAIN, and no pread
#           of the spool (the parked reader is answered from the bytes
#           the daemon just received, not read back from the file).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

command -v strace >/dev/null || skip "no strace"
N=20
mkdir -p "$T/w" # the traces are written outside the watched directory
F=$T/w/app.log
: >"$F"
TRACE=(pread64 read readv recvfrom recvmsg openat stat lstat newfstatat fstat statx)
trace_set=$(IFS=,; echo "${TRACE[*]}")
mkdir -p "$T/g.spool"
strace -f -qq -o "$T/agent.trace" -e trace="$trace_set" \
    "$AGENT_BIN" --listen "unix:$T/g.sock" --spool-dir "$T/g.spool" 2>"$T/g.err" &
STRACE=$!
PIDS+=($STRACE)
need "the agent listens" wait_for 10 test -S "$T/g.sock"
FS_WRAP=(strace -f -qq -o "$T/fs.trace" -e trace="$trace_set")
start_fs --no-host --vm "g=unix:$T/g.sock"
need "g's agent is up" wait_for 10 grep -q "^agent_state: up" "$MP/vms/g/info"
new_stream 3 "tail_file g $F" || exit 1
cat "$MP/streams/$ID/data" >"$T/out" &
CAT=$!
PIDS+=($CAT)
need "the reader parks" wait_for 10 grep -q "^parked: 1$" "$MP/ctl"
for i in $(seq "$N"); do
    echo "wake-up $i" >>"$F"
    need "append $i reaches the reader" \
        wait_for 10 eval '[ "$(wc -l <"$T/out")" -eq $i ]' || break
done
exec 3>&-
kill "$CAT"
# The daemon itself, not strace (which would detach and leave it).
DPID=$(pgrep -P "$FS_PID" -x proviumfs)
kill -TERM "$DPID"
reap "$FS_PID" 10
FS_PID=
kill -TERM "$(pgrep -P "$STRACE" -x provium-agent)"
reap "$STRACE" 10

# The file's fd in the agent, and everything the agent did from its first
# read of appended bytes on.
fd=$(sed -n "s|.*openat(AT_FDCWD, \"$F\", .*) = \([0-9]*\)$|\1|p" "$T/agent.trace" | head -1)
need "the agent opened the file ($fd)" test -n "$fd"
first=$(grep -n "pread64($fd, \"wake-up 1" "$T/agent.trace" | head -1 | cut -d: -f1)
need "the agent read the first append" test -n "$first"
tail -n +"$first" "$T/agent.trace" >"$T/agent.wake"
preads=$(grep -c "pread64($fd," "$T/agent.wake")
check "agent: one pread per append ($preads for $N)" test "$preads" -eq "$N"
check "agent: no stat of the file's path ($(grep -c "\"$F\"" "$T/agent.wake"))" \
    eval '! grep -q "\"$F\"" "$T/agent.wake"'
check "agent: no fstat of the file ($(grep -cE "fstat\\($fd,|newfstatat\\($fd, \"\"|statx\\($fd, \"\"" "$T/agent.wake"))" \
    eval '! grep -qE "fstat\\($fd,|newfstatat\\($fd, \"\"|statx\\($fd, \"\"" "$T/agent.wake"'
# The directory is watched for name events only: an append is one inotify
# event (the file's, with no name), not two.
check "agent: no inotify event names the file ($(grep -c 'app\.log' "$T/agent.wake"))" \
    eval '! grep -q "app\.log" "$T/agent.wake"'
check "agent: no read that says EAGAIN ($(grep -c "EAGAIN" "$T/agent.wake"))" \
    eval '! grep -q EAGAIN "$T/agent.wake"'

# The daemon: from the first frame of appended bytes it read on, on the
# agent's socket. (Its /dev/fuse loop reads until EAGAIN after the
# reader's next READ: that is after the reply, not on the wake-up path.)
first=$(grep -n 'wake-up 1' "$T/fs.trace" | head -1 | cut -d: -f1)
need "the daemon read the first append" test -n "$first"
sock=$(sed -n "${first}s/^[0-9]* *read(\([0-9]*\), .*/\1/p" "$T/fs.trace")
need "on a socket ($sock)" test -n "$sock"
tail -n +"$first" "$T/fs.trace" >"$T/fs.wake"
check "daemon: no read of the agent's socket that says EAGAIN ($(grep -cE "^[0-9]+ +read\\($sock, .*EAGAIN" "$T/fs.wake"))" \
    eval '! grep -qE "^[0-9]+ +read\\($sock, .*EAGAIN" "$T/fs.wake"'
check "daemon: one read of the agent's socket per append ($(grep -cE "^[0-9]+ +read\\($sock, " "$T/fs.wake"))" \
    test "$(grep -cE "^[0-9]+ +read\\($sock, " "$T/fs.wake")" -eq "$N"
check "daemon: no pread of the spool ($(grep -c "pread64(" "$T/fs.wake"))" \
    eval '! grep -q "pread64(" "$T/fs.wake"'
[ "$FAILS" -eq 0 ] || { log "--- agent ---"; head -100 "$T/agent.wake" >&2; log "--- daemon ---"; head -200 "$T/fs.wake" >&2; }
