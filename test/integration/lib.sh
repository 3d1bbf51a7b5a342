# lib.sh - shared by the proviumfs integration tests (sourced, bash).
#
# Each test starts a private proviumfs on a private mount point (mktemp
# -d), waits for it with a deadline, and always cleans up in an EXIT trap:
# kills what it started, unmounts, removes its files, and fails if the
# daemon's stderr shows a sanitizer report. What the trap cannot do (ctest
# SIGKILLs a test at its timeout) the sweep does: the test runs in a
# session of its own and registers its mount point and scratch directory
# (test/sweep.sh, docs/testing.md).
#
# The helpers cannot pass by accident: every wait has a deadline, and a
# helper that fails (ctl_cmd, ctl_reply, new_stream, read_eof, read_line,
# reap, need) records the failure itself, so a caller that ignores the
# return value still fails the test. They return non-zero as well, for
# callers that must stop. wait_for is a predicate: check or need it.
#
# Skips are honest: `skip REASON` exits 77 (ctest's SKIP_RETURN_CODE), or
# fails when PROVIUM_REQUIRE_ALL=1 (CI: nothing may be skipped there).
#
# Source it first thing: to get a session of its own the script is
# re-executed (same pid) under setsid(1), so whatever runs before the
# `. lib.sh` line runs twice.
#
# Environment (set by ctest): PROVIUM_BUILD_DIR, PROVIUM_SOURCE_DIR,
# PROVIUM_RUN_DIR; optional PROVIUM_REQUIRE_ALL, CTL_TIMEOUT.

set -u
BUILD=${PROVIUM_BUILD_DIR:?PROVIUM_BUILD_DIR not set}
. "$(dirname "${BASH_SOURCE[0]}")/../sweep.sh"
session_enter "$@"

FS_BIN=$BUILD/fs/proviumfs
AGENT_BIN=$BUILD/guest/provium-agent
PROBE=$BUILD/test/fs_probe
T=$(mktemp -d /tmp/provium-it.XXXXXX)
MP=$T/mnt
FS_PID=
FS_WRAP=() # a command the daemon runs under (e.g. nsenter --net=...)
FAILS=0
PIDS=()
CTL_TIMEOUT=${CTL_TIMEOUT:-30} # seconds a ctl reply may take to start
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export LC_ALL=C # ${#var} counts bytes

reg_begin "$(basename "$0" .sh)"
register dir "$T"

log() { printf '%s\n' "$*" >&2; }

fail() {
    log "FAIL: $*"
    FAILS=$((FAILS + 1))
}

ok() { log "ok: $*"; }

check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

# need DESCRIPTION COMMAND...: a precondition of what follows; the test
# stops (fails) if it does not hold, rather than go on to hang or mislead.
need() {
    local what=$1
    shift
    "$@" && return 0
    fail "$what"
    exit 1
}

# skip REASON: the test cannot run here (a prerequisite is missing).
skip() {
    if [ "${PROVIUM_REQUIRE_ALL:-0}" = 1 ]; then
        fail "skipped, but PROVIUM_REQUIRE_ALL=1: $*"
        exit 1
    fi
    log "SKIP: $*"
    exit 77
}

now_ms() { date +%s%3N; }

# wait_for SECONDS COMMAND...: poll a condition with a deadline; 1 if it
# did not hold in time. SECONDS may be fractional.
wait_for() {
    local deadline
    deadline=$(($(now_ms) + $(awk -v s="$1" 'BEGIN { printf "%d", s * 1000 }')))
    shift
    until "$@"; do
        [ "$(now_ms)" -ge "$deadline" ] && return 1
        sleep 0.05
    done
}

sanitizer_report() {
    cat "$T"/fs.err* 2>/dev/null |
        grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer'
}

teardown() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    if [ -n "$FS_PID" ] && kill -0 "$FS_PID" 2>/dev/null; then
        kill -TERM "$FS_PID" 2>/dev/null
        wait_for 5 eval '! kill -0 $FS_PID 2>/dev/null' || kill -9 "$FS_PID" 2>/dev/null
    fi
    if grep -q " $MP " /proc/mounts 2>/dev/null; then
        fusermount3 -u -z "$MP" 2>/dev/null || umount -l "$MP" 2>/dev/null
    fi
    if sanitizer_report >&2; then
        log "FAIL: sanitizer report in the daemon's stderr"
        FAILS=$((FAILS + 1))
    fi
    if [ "$FAILS" -ne 0 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; }; then
        log "--- daemon stderr ---"
        cat "$T"/fs.err* >&2 2>/dev/null
        reg_end
        log "$(basename "$0"): $FAILS failure(s), rc $rc"
        exit 1
    fi
    reg_end || { log "$(basename "$0"): cleanup failed"; exit 1; }
    if [ "$rc" -eq 77 ]; then
        log "$(basename "$0"): skipped"
        exit 77
    fi
    log "$(basename "$0"): all passed"
    exit 0
}
trap teardown EXIT
trap 'log "interrupted (SIGINT)"; exit 130' INT
trap 'log "terminated (SIGTERM)"; exit 143' TERM

# Prerequisites of every mount test.
[ -x "$FS_BIN" ] || skip "no $FS_BIN (build first)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
if [ "$(id -u)" -ne 0 ] && ! command -v fusermount3 >/dev/null; then
    skip "not root and no fusermount3"
fi

# start_fs [proviumfs options...]: mount on $MP, wait until it serves.
start_fs() {
    mkdir -p "$MP" "$T/spool" 2>/dev/null
    register mount "$MP"
    [ -f "$T/fs.err" ] && mv "$T/fs.err" "$T/fs.err.$(now_ms)"
    PROVIUM_AGENT=$AGENT_BIN "${FS_WRAP[@]}" "$FS_BIN" -f --spool-dir "$T/spool" \
        "$@" "$MP" 2>"$T/fs.err" &
    FS_PID=$!
    register_pid "$FS_PID"
    if ! wait_for 10 test -f "$MP/README"; then
        fail "proviumfs did not come up"
        exit 1
    fi
}

# stop_fs: SIGTERM the daemon; its exit status (1 and a recorded failure
# if it is still running 10 s later: it is then killed).
stop_fs() {
    kill -TERM "$FS_PID"
    reap "$FS_PID" 10
    local rc=$?
    FS_PID=
    return $rc
}

# no_d_state: no process of this test (its session) stays in
# uninterruptible sleep (D), as a reader of a FUSE request nobody answers
# would. A process passing through D while it exits is not one: the
# check holds if, within 2 s, no process of the test is in D.
d_state_now() {
    local pid
    D_PIDS=()
    sweep_members session "$$"
    for pid in "${MEMBERS[@]}"; do
        proc_stat "$pid" && [ "${STAT[0]}" = D ] && D_PIDS+=("$pid")
    done
    [ ${#D_PIDS[@]} -gt 0 ]
}
no_d_state() {
    local p
    wait_for 2 eval '! d_state_now' && return 0
    for p in "${D_PIDS[@]}"; do
        log "in D state: $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) ($(cat "/proc/$p/wchan" 2>/dev/null))"
    done
    return 1
}

# reap PID [SECONDS]: the exit status of the background job PID, which
# must end within SECONDS (default 5). If it does not, a failure is
# recorded, it is killed, and the status is 255: a `wait` of its own
# would hang the test until the ctest timeout.
reap() {
    local pid=$1 secs=${2:-5}
    if ! wait_for "$secs" eval "! kill -0 $pid 2>/dev/null"; then
        fail "process $pid did not end within $secs s"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 255
    fi
    wait "$pid"
}

# ctl_reply FD: read one whole reply on FD, which must be followed by the
# end of file that ends every reply (SPEC §4.3, docs/fs.md). Sets STATUS;
# PAYLOAD as a command substitution gives it (trailing newlines dropped);
# PAYLOAD_RAW exactly (trailing newlines kept; a shell variable holds no
# NUL); the payload's bytes are in $T/payload (for cmp). Fails (recorded)
# on no reply within CTL_TIMEOUT s, a malformed status line, a payload
# shorter than announced, or anything but the end of file after it.
ctl_reply() {
    local fd=$1 len size
    STATUS=
    PAYLOAD=
    PAYLOAD_RAW=
    FIELDS=
    # bash's read takes a byte per read(2): nothing past the line.
    read_line "$fd" "$CTL_TIMEOUT" || { fail "ctl reply: no status line"; return 1; }
    # FIELDS: what a marked read_until/expect/peek puts after the length.
    if ! [[ "$LINE" =~ ^(ok|timeout|eof|closed|error)\ ([0-9]+)(\ ([-0-9 ]+))?$ ]]; then
        fail "ctl reply: bad status line \`$LINE\`"
        return 1
    fi
    STATUS=${BASH_REMATCH[1]}
    len=${BASH_REMATCH[2]}
    FIELDS=${BASH_REMATCH[4]}
    # The whole reply is there once its first byte was: no long wait.
    timeout 5 head -c "$len" <&"$fd" >"$T/payload"
    size=$(stat -c %s "$T/payload")
    if [ "$size" -ne "$len" ]; then
        fail "ctl reply \`$LINE\`: $size of $len payload bytes"
        return 1
    fi
    PAYLOAD_RAW=$(cat "$T/payload"; echo x)
    PAYLOAD_RAW=${PAYLOAD_RAW%x}
    PAYLOAD=$(cat "$T/payload")
    read_eof "$fd"
}

# ctl_cmd FD COMMAND: write, read the reply (ctl_reply); sets STATUS,
# PAYLOAD and PAYLOAD_RAW.
# A write the daemon refuses (malformed command) sets STATUS=write-failed
# and returns 1 without recording a failure (tests check refusals); the
# error reply it queued is then read by the next ctl_reply.
ctl_cmd() {
    local fd=$1
    if ! printf '%s\n' "$2" >&"$fd"; then
        STATUS=write-failed
        PAYLOAD=
        return 1
    fi
    ctl_reply "$fd"
}

# Open a stream: new_stream FD OPEN-COMMAND; sets ID; FD is the owner ctl.
# The reply is checked to be "ok 0" (empty payload).
new_stream() {
    local fd=$1 cmd=$2
    if ! ID=$(cat "$MP/clone") || ! [[ "$ID" =~ ^[0-9]+$ ]]; then
        fail "clone: no id ($ID)"
        return 1
    fi
    if ! eval "exec $fd<>\"\$MP/streams/\$ID/ctl\""; then
        fail "open streams/$ID/ctl"
        return 1
    fi
    if ! ctl_cmd "$fd" "$cmd" || [ "$STATUS" != ok ] || [ -n "$PAYLOAD" ]; then
        fail "open \`$cmd\` replied: $STATUS $PAYLOAD"
        return 1
    fi
}

# read_eof FD: the end of file that follows a completely read reply. Fails
# (recorded) on a byte (a newline too) or on no answer within 5 s.
read_eof() {
    local hex rc
    hex=$(timeout 5 head -c 1 <&"$1" | od -An -tx1; exit "${PIPESTATUS[0]}")
    rc=$?
    if [ $rc -eq 124 ]; then
        fail "read_eof: no end of file within 5 s"
        return 1
    elif [ $rc -ne 0 ]; then
        fail "read_eof: read failed (head exited $rc)"
        return 1
    elif [ -n "${hex// /}" ]; then
        fail "read_eof: got byte 0x${hex// /} instead of the end of file"
        return 1
    fi
}

# read_line FD [SECONDS]: one line (without its newline) from a live file
# within a deadline, into LINE; bash's read takes a byte per read(2), so
# nothing past the line is consumed. A read blocked on a FUSE file ends
# only by a signal, hence timeout(1) around it.
read_line() {
    local fd=$1 secs=${2:-10}
    LINE=$(timeout "$secs" bash -c 'IFS= read -r l || exit 1; printf "%sx" "$l"' <&"$fd")
    if [ $? -ne 0 ]; then
        fail "read_line: no line within $secs s"
        LINE=
        return 1
    fi
    LINE=${LINE%x}
}
