#!/usr/bin/env bash
# chaos.sh - a bounded run of random concurrent operations on one mount,
# with the host agent SIGKILLed at random (issue 10, SPEC §6.3): streams
# opened and closed, `data` and `log` read (and readers SIGKILLed
# mid-read), ops and garbage written to ctl files, processes run and
# waited for, while sources grow. Then the invariants a user relies on:
#
#  - every stream's bytes, as any reader got them, are a prefix of its
#    source (nothing reordered, duplicated or invented; a loss ends the
#    stream with an error, never a gap);
#  - a process whose `wait` answered `ok` has its whole output recorded;
#    one whose wait answered `error` has a prefix of it;
#  - every reader ends when its stream is closed (no reader left hanging,
#    none in D state);
#  - the daemon is still up, its fd count is back where it started once
#    everything is closed, a new stream works, and (in the sanitizer
#    build) its stderr shows no report.
#
# CHAOS_SECONDS (default 20) bounds the run; CHAOS_WORKERS (default 4).
# The random seed is printed: CHAOS_SEED=N replays the same choices
# (timing still varies).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

SECS=${CHAOS_SECONDS:-20}
WORKERS=${CHAOS_WORKERS:-4}
NSRC=4
SEED=${CHAOS_SEED:-$((RANDOM * 32768 + RANDOM))}
log "chaos: ${SECS}s, $WORKERS workers, seed $SEED"
RANDOM=$SEED

start_fs
need "host agent up" wait_for 10 eval '[ "$(agent_state_of host)" = up ]'
FS_FDS0=$(ls "/proc/$FS_PID/fd" | wc -l)

# Sources: files that grow while the run goes on, by lines and by
# occasional 64 KiB blocks, each line naming its source and number.
for k in $(seq 0 $((NSRC - 1))); do
    : >"$T/src$k"
    (
        n=0
        while [ ! -e "$T/stop" ]; do
            n=$((n + 1))
            if [ $((n % 50)) -eq 0 ]; then
                head -c 65536 /dev/urandom | od -An -tx1 | head -c 65536
            else
                printf 'src%d line %d\n' "$k" "$n"
            fi >>"$T/src$k"
            sleep 0.01
        done
    ) &
    PIDS+=($!)
done

DEADLINE=$(($(now_ms) + SECS * 1000))
running() { [ "$(now_ms)" -lt "$DEADLINE" ]; }

# chaos_fail WORKER TEXT: recorded for the main shell to count.
chaos_fail() { printf '%s\n' "$2" >>"$T/chaos.fail.$1"; }

# reply FD SECS: the status line of a ctl reply (the payload is left).
reply() {
    timeout "$2" bash -c 'IFS= read -r l && printf "%s" "$l"' <&"$1"
}

# prefix_of OUT SRC: OUT's bytes are the first bytes of SRC.
prefix_of() {
    local n
    n=$(stat -c %s "$1")
    cmp -s -n "$n" "$1" "$2"
}

# A stream on a random source, read by `cat data` until its owner closes
# it; the reader must end, with the source's first bytes.
op_stream() {
    local w=$1 k=$((RANDOM % NSRC)) id fd line cat rc out
    id=$(cat "$MP/clone" 2>/dev/null) || return 0
    exec {fd}<>"$MP/streams/$id/ctl" || return 0
    printf 'tail_file host %s start=beginning\n' "$T/src$k" >&"$fd"
    line=$(reply "$fd" 15)
    if [[ "$line" != "ok 0" ]]; then
        # An agent killed under the open: an error is the right answer.
        [[ "$line" == error* ]] ||
            chaos_fail "$w" "stream $id: open replied \`$line\`"
        exec {fd}>&-
        return 0
    fi
    out=$T/out.$w.$id
    timeout 30 cat "$MP/streams/$id/data" >"$out" 2>/dev/null {fd}>&- &
    cat=$!
    case $((RANDOM % 4)) in
    0) printf 'next 100ms\n' >&"$fd" ;;
    1) printf 'drain 100ms\n' >&"$fd" ;;
    2) printf 'read_until "line 1" 200ms\n' >&"$fd" ;;
    3) head -c $((RANDOM % 300)) /dev/urandom >&"$fd" 2>/dev/null ;;
    esac
    sleep "0.$((RANDOM % 5))"
    if [ $((RANDOM % 3)) -eq 0 ]; then
        cat "$MP/streams/$id/log" >"$out.log" 2>/dev/null &&
            ! prefix_of "$out.log" "$T/src$k" &&
            chaos_fail "$w" "stream $id: log is not a prefix of src$k"
    fi
    exec {fd}>&- # the owner closes: the stream goes, its reader ends
    wait "$cat"
    rc=$?
    [ $rc -eq 124 ] && chaos_fail "$w" "stream $id: reader did not end after close"
    prefix_of "$out" "$T/src$k" ||
        chaos_fail "$w" "stream $id: data is not a prefix of src$k (rc $rc)"
    rm -f "$out" "$out.log"
}

# A reader SIGKILLed mid-read of a long-lived stream.
op_kill_reader() {
    local id=${KEEP[$((RANDOM % NSRC))]} cat
    timeout 30 cat "$MP/streams/$id/data" >/dev/null 2>&1 &
    cat=$!
    sleep "0.$((RANDOM % 3))"
    kill -9 "$cat" 2>/dev/null
    wait "$cat" 2>/dev/null
}

# A process whose whole output is known: ok means all of it recorded.
op_exec() {
    local w=$1 fd n line len p
    n=$((RANDOM % 20000 + 1))
    exec {fd}<>"$MP/vms/host/ctl" || return 0
    printf 'exec -- seq 1 %d\n' "$n" >&"$fd"
    line=$(reply "$fd" 15)
    p=$(timeout 5 head -c "${line##* }" <&"$fd" 2>/dev/null)
    if [[ "$line" != ok* ]] || ! [[ "$p" =~ ^[0-9]+$ ]]; then
        [[ "$line" == error* ]] || chaos_fail "$w" "exec replied \`$line\`"
        exec {fd}>&-
        return 0
    fi
    timeout 5 head -c 1 <&"$fd" >/dev/null # the end of that reply
    printf 'wait %s 20s\n' "$p" >&"$fd"
    line=$(reply "$fd" 25)
    exec {fd}>&-
    seq 1 "$n" >"$T/want.$w"
    cat "$MP/vms/host/procs/$p/stdout" >"$T/got.$w" 2>/dev/null
    case $line in
    ok*) cmp -s "$T/want.$w" "$T/got.$w" ||
        chaos_fail "$w" "proc $p: wait ok but stdout differs from seq 1 $n" ;;
    error* | timeout*) prefix_of "$T/got.$w" "$T/want.$w" ||
        chaos_fail "$w" "proc $p: stdout is not a prefix of seq 1 $n" ;;
    *) chaos_fail "$w" "proc $p: wait replied \`$line\`" ;;
    esac
}

worker() {
    local w=$1
    while running; do
        case $((RANDOM % 6)) in
        0 | 1 | 2) op_stream "$w" ;;
        3) op_kill_reader ;;
        4) op_exec "$w" ;;
        5) cat "$MP/ctl" "$MP/vms/host/info" >/dev/null 2>&1 ;;
        esac
    done
}

# Long-lived streams (keep), read again at the end.
KEEP=()
for k in $(seq 0 $((NSRC - 1))); do
    id=$(cat "$MP/clone")
    printf 'tail_file host %s start=beginning keep\n' "$T/src$k" >"$MP/streams/$id/ctl"
    KEEP+=("$id")
done

WPIDS=()
for w in $(seq 1 "$WORKERS"); do
    worker "$w" &
    WPIDS+=($!)
done
# The monkey: the host agent SIGKILLed every 1-3 s.
KILLS=0
while running; do
    sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"
    running || break
    ag=$(host_agent) && kill -9 "$ag" && KILLS=$((KILLS + 1))
done
for p in "${WPIDS[@]}"; do reap "$p" 90; done
touch "$T/stop"

check "the host agent was killed during the run ($KILLS times)" test "$KILLS" -gt 0
check "the daemon is up" kill -0 "$FS_PID"
for f in "$T"/chaos.fail.*; do
    [ -e "$f" ] || continue
    while IFS= read -r line; do fail "$line"; done <"$f"
done
check "no reader in D state" no_d_state

# The long-lived streams: their histories are prefixes of their sources.
for k in $(seq 0 $((NSRC - 1))); do
    id=${KEEP[$k]}
    timeout 10 cat "$MP/streams/$id/log" >"$T/keep.$k" 2>/dev/null
    check "keep stream $id: log is a prefix of src$k ($(stat -c %s "$T/keep.$k") bytes)" \
        prefix_of "$T/keep.$k" "$T/src$k"
    printf 'close\n' >"$MP/streams/$id/ctl"
done

# Everything closed: the daemon holds what it held at the start, plus
# the histories of the processes it remembers (procs/<n>/stdout and
# stderr: two streams of two spool fds each, at most 256 processes),
# plus libfuse's splice pipes (two fds for each thread that has spliced
# a reply: the loop and each reply thread, made at its first splice and
# kept; docs/fs.md Threads).
need "host agent up again" wait_for 15 eval '[ "$(agent_state_of host)" = up ]'
NPROCS=$(ls "$MP/vms/host/procs" | wc -l)
NPIPES=$(sed -n 's/^replies: spliced, \([0-9]*\) reply thread(s)$/\1/p' "$MP/ctl")
NPIPES=$((${NPIPES:--1} + 1))
fds_back() {
    FS_FDS=$(ls "/proc/$FS_PID/fd" | wc -l)
    [ "$FS_FDS" -le $((FS_FDS0 + 4 * NPROCS + 2 * NPIPES + 2)) ]
}
check "daemon fds back to the start ($FS_FDS0 + 4 x $NPROCS processes + 2 x $NPIPES splice pipes)" \
    wait_for 10 fds_back
log "daemon fds: $FS_FDS"
if ! fds_back; then
    ls -l "/proc/$FS_PID/fd" | awk 'NR > 1 { print $NF }' |
        sed 's/[0-9][0-9]*/N/g' | sort | uniq -c >&2
    for d in "$MP"/streams/*/; do
        [ -e "$d" ] && log "left: $d $(tr '\n' ' ' <"$d/info")"
    done
    cat "$MP/ctl" >&2
fi

# And it still works: a new stream sees a new line.
echo "after the chaos" >>"$T/src0"
new_stream 3 "tail_file host $T/src0 start=beginning"
ctl_cmd 3 'expect "after the chaos" 10s'
check "a new stream works after the run ($STATUS)" test "$STATUS" = ok
exec 3>&-
