# lib.sh - shared by the proviumfs integration tests (sourced, bash).
#
# Each test starts a private proviumfs on a private mount point (mktemp
# -d), waits for it with a deadline, and always cleans up in an EXIT trap:
# kills what it started, unmounts, removes its files, and fails if the
# daemon's stderr shows a sanitizer report.
#
# Environment (set by ctest): PROVIUM_BUILD_DIR, PROVIUM_SOURCE_DIR.

set -u
BUILD=${PROVIUM_BUILD_DIR:?PROVIUM_BUILD_DIR not set}
FS_BIN=$BUILD/fs/proviumfs
AGENT_BIN=$BUILD/guest/provium-agent
PROBE=$BUILD/test/fs_probe
T=$(mktemp -d /tmp/provium-it.XXXXXX)
MP=$T/mnt
FS_PID=
FAILS=0
PIDS=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

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

now_ms() { date +%s%3N; }

# wait_for SECONDS COMMAND...: poll a condition with a deadline.
wait_for() {
    local deadline=$(($(now_ms) + $1 * 1000))
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
    if [ "$FAILS" -ne 0 ] || [ "$rc" -ne 0 ]; then
        log "--- daemon stderr ---"
        cat "$T"/fs.err* >&2 2>/dev/null
        rm -rf "$T"
        log "$(basename "$0"): $FAILS failure(s), rc $rc"
        exit 1
    fi
    rm -rf "$T"
    log "$(basename "$0"): all passed"
    exit 0
}
trap teardown EXIT
trap 'log "interrupted (SIGINT)"; exit 130' INT
trap 'log "terminated (SIGTERM)"; exit 143' TERM

# start_fs [proviumfs options...]: mount on $MP, wait until it serves.
start_fs() {
    mkdir -p "$MP" "$T/spool" 2>/dev/null
    [ -f "$T/fs.err" ] && mv "$T/fs.err" "$T/fs.err.$(now_ms)"
    PROVIUM_AGENT=$AGENT_BIN "$FS_BIN" -f --spool-dir "$T/spool" "$@" "$MP" \
        2>"$T/fs.err" &
    FS_PID=$!
    if ! wait_for 10 test -f "$MP/README"; then
        log "proviumfs did not come up"
        exit 1
    fi
}

stop_fs() {
    kill -TERM "$FS_PID"
    wait_for 10 eval '! kill -0 $FS_PID 2>/dev/null'
    wait "$FS_PID" 2>/dev/null
    local rc=$?
    FS_PID=
    return $rc
}

# Open a stream: new_stream FD OPEN-COMMAND; sets ID; FD is the owner ctl.
# The reply's status line is checked to be "ok 0".
new_stream() {
    local fd=$1 cmd=$2 line
    ID=$(cat "$MP/clone")
    eval "exec $fd<>\"\$MP/streams/\$ID/ctl\""
    printf '%s\n' "$cmd" >&"$fd"
    IFS= read -r line <&"$fd"
    if [ "$line" != "ok 0" ]; then
        log "open \`$cmd\` replied: $line"
        return 1
    fi
    read_eof "$fd"
}

# Read the end-of-file that follows a completely read reply.
read_eof() {
    local extra
    extra=$(timeout 5 head -c 1 <&"$1")
    [ -z "$extra" ]
}

# ctl_cmd FD COMMAND: write, read the reply; sets STATUS and PAYLOAD.
ctl_cmd() {
    local fd=$1 line len
    printf '%s\n' "$2" >&"$fd" || { STATUS=write-failed; PAYLOAD=; return 1; }
    IFS= read -r line <&"$fd"
    STATUS=${line% *}
    len=${line##* }
    PAYLOAD=$(head -c "$len" <&"$fd")
    read_eof "$fd"
}
