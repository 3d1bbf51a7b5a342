# lib_fault.sh - shared by the fault-injection tests (test/fault/*.sh),
# sourced after test/integration/lib.sh.
#
# Adds: small tmpfs mounts (for full spools) that are always unmounted,
# processes to kill whatever happens (what a test started through the
# mount, should the daemon fail to end it), pid checks that count a
# zombie as dead (PID 1 of a container may never reap), and access to
# the daemon's host agent and to extra agents.

FAULT_AGENT=$BUILD/test/fault_agent
TMPFS=()      # mount points to unmount at exit
KILL_LATER=() # pids of processes a test started through the mount

fault_cleanup() {
    local p m
    # (Each leads its own process group: the group, then the leader.)
    for p in "${KILL_LATER[@]}"; do
        kill -9 -- "-$p" 2>/dev/null
        kill -9 "$p" 2>/dev/null
    done
    # The daemon holds spool files: stop it before unmounting its spool.
    if [ -n "$FS_PID" ] && kill -0 "$FS_PID" 2>/dev/null; then
        kill -TERM "$FS_PID" 2>/dev/null
        wait_for 10 eval '! kill -0 $FS_PID 2>/dev/null' ||
            kill -9 "$FS_PID" 2>/dev/null
    fi
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    if grep -q " $MP " /proc/mounts 2>/dev/null; then
        fusermount3 -u -z "$MP" 2>/dev/null || umount -l "$MP" 2>/dev/null
    fi
    for m in "${TMPFS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
}
# lib.sh's teardown runs last and sees the script's exit status.
trap 'rc=$?; fault_cleanup; (exit $rc); teardown' EXIT

# small_tmpfs DIR SIZE: a tmpfs of SIZE (e.g. 16m) at DIR.
small_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2" provium-fault "$1" || {
        log "cannot mount a tmpfs at $1"
        exit 1
    }
    TMPFS+=("$1")
}

# alive PID: the process exists and is not a zombie.
alive() {
    local st
    st=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

dead() { ! alive "$1"; }

# host_agent: pid of the daemon's provium-agent (the host VM's).
host_agent() {
    local p
    for p in $(ps -o pid= --ppid "$FS_PID" 2>/dev/null); do
        if [ "$(cat /proc/"$p"/comm 2>/dev/null)" = provium-agent ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# listen_agent NAME [agent options...]: provium-agent on unix:$T/NAME.sock.
listen_agent() {
    local name=$1
    shift
    mkdir -p "$T/$name.spool"
    "$AGENT_BIN" --listen "unix:$T/$name.sock" --spool-dir "$T/$name.spool" \
        "$@" 2>>"$T/$name.err" &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
    wait_for 5 test -S "$T/$name.sock"
}

# exec_pid FD COMMAND: exec through vms/<vm>/ctl on FD a command whose
# first output line is its pid (sh -c 'echo $$; exec ...'); sets P (proc
# id) and PID, and remembers PID for killing at exit.
exec_pid() {
    local vm=$1 fd=$2
    ctl_cmd "$fd" "$3"
    [ "$STATUS" = ok ] || { log "exec: $STATUS $PAYLOAD"; return 1; }
    P=$PAYLOAD
    wait_for 5 eval '[ -s "$MP/vms/$vm/procs/$P/stdout" ]' || return 1
    PID=$(head -n1 "$MP/vms/$vm/procs/$P/stdout")
    KILL_LATER+=("$PID")
}

# state_of VM: the agent_state line of vms/VM/info.
agent_state_of() {
    sed -n 's/^agent_state: //p' "$MP/vms/$1/info" 2>/dev/null
}

# start_fs_env ENV-OPTIONS... -- PROVIUMFS-OPTIONS...: start_fs with the
# daemon's environment changed by env(1) options (-u NAME, NAME=VALUE).
start_fs_env() {
    local envopts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        envopts+=("$1")
        shift
    done
    shift
    mkdir -p "$MP" "$T/spool" 2>/dev/null
    [ -f "$T/fs.err" ] && mv "$T/fs.err" "$T/fs.err.$(now_ms)"
    env "${envopts[@]}" PROVIUM_AGENT="$AGENT_BIN" "$FS_BIN" -f \
        --spool-dir "$T/spool" "$@" "$MP" 2>"$T/fs.err" &
    FS_PID=$!
    if ! wait_for 10 test -f "$MP/README"; then
        log "proviumfs did not come up"
        exit 1
    fi
}

# ctl_cmd_within SECONDS FD COMMAND: ctl_cmd, but a reply that does not
# come within SECONDS sets STATUS=no-reply instead of blocking the test.
# (The reply is read by a cat that timeout(1) can end: bash's read -t does
# not interrupt a read parked in the file system.)
ctl_cmd_within() {
    local secs=$1 fd=$2 reply line
    printf '%s\n' "$3" >&"$fd" || { STATUS=write-failed; PAYLOAD=; return 1; }
    reply=$(timeout "$secs" cat <&"$fd"; echo x)
    reply=${reply%x}
    if [ -z "$reply" ]; then
        STATUS=no-reply
        PAYLOAD="no reply within ${secs}s"
        return 1
    fi
    line=${reply%%$'\n'*}
    STATUS=${line% *}
    PAYLOAD=${reply#*$'\n'}
}
