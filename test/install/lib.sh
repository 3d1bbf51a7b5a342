# lib.sh - shared by the product tests of test/install (sourced, bash):
# install, package, CLI, start-up, docs, Lua tooling (issue 14).
#
# Each test works in a private temp dir, mounts any proviumfs on a
# private mount point under it, waits with deadlines, and always cleans
# up in an EXIT trap: kills what it started (by pid), unmounts, removes
# its files. It fails on any failed check, and when a daemon's stderr
# shows a sanitizer report.
#
# Environment (set by ctest): PROVIUM_BUILD_DIR, PROVIUM_SOURCE_DIR.
set -u
BUILD=${PROVIUM_BUILD_DIR:?PROVIUM_BUILD_DIR not set}
SRC=${PROVIUM_SOURCE_DIR:?PROVIUM_SOURCE_DIR not set}
# A session of its own and a registration, so that a run ctest kills
# leaves nothing behind (test/sweep.sh, docs/testing.md).
. "$SRC/test/sweep.sh"
session_enter "$@"
FS_BIN=$BUILD/fs/proviumfs
AGENT_BIN=$BUILD/guest/provium-agent
T=$(mktemp -d /tmp/provium-inst.XXXXXX)
reg_begin "install_$(basename "$0" .sh)"
register dir "$T" # mounts under it are undone by the sweep too
FAILS=0
PIDS=()     # processes to kill -9 at the end
MOUNTS=()   # mount points to unmount at the end
CLEANUP=()  # commands to run at the end (eval'd, last first)
export LUA_PATH="$SRC/lua/?.lua;;"
export LUA_CPATH="$BUILD/lua/?.so;;"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

log() { printf '%s\n' "$*" >&2; }
fail() { log "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { log "ok: $*"; }

check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

now_ms() { date +%s%3N; }

# wait_for SECONDS COMMAND...: poll a state with a deadline.
wait_for() {
    local deadline=$(($(now_ms) + $1 * 1000))
    shift
    until "$@"; do
        [ "$(now_ms)" -ge "$deadline" ] && return 1
        sleep 0.05
    done
}

mounted() { grep -q " $1 fuse" /proc/mounts; }

teardown() {
    local rc=$? i
    for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" || true; done
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        wait_for 5 eval "! kill -0 $p 2>/dev/null" || kill -9 "$p" 2>/dev/null
    done
    for m in "${MOUNTS[@]}"; do
        mounted "$m" && { fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m"; }
    done
    if grep -sqE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/*.err; then
        fail "sanitizer report in a daemon's stderr"
    fi
    # 77 is a skip (ctest's SKIP_RETURN_CODE), a failure where nothing may
    # be skipped (PROVIUM_REQUIRE_ALL=1, CI).
    if [ "$rc" -eq 77 ] && [ "$FAILS" -eq 0 ]; then
        rm -rf "$T"
        reg_end
        if [ "${PROVIUM_REQUIRE_ALL:-0}" = 1 ]; then
            log "$(basename "$0"): skipped, but PROVIUM_REQUIRE_ALL=1"
            exit 1
        fi
        log "$(basename "$0"): skipped"
        exit 77
    fi
    if [ "$FAILS" -ne 0 ] || [ "$rc" -ne 0 ]; then
        for f in "$T"/*.err; do [ -s "$f" ] && { log "--- $f"; cat "$f" >&2; }; done
        rm -rf "$T"
        reg_end
        log "$(basename "$0"): $FAILS failure(s), rc $rc"
        exit 1
    fi
    rm -rf "$T"
    reg_end || { log "$(basename "$0"): cleanup failed"; exit 1; }
    log "$(basename "$0"): all passed"
    exit 0
}
trap teardown EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# start_fs BIN MOUNTPOINT [options...]: a foreground daemon on a private
# mount point, up when README is there; sets FS_PID. Its stderr goes to
# $T/<basename of mount point>.err.
start_fs() {
    local bin=$1 mp=$2
    shift 2
    mkdir -p "$mp" "$T/spool"
    "$bin" -f --spool-dir "$T/spool" "$@" "$mp" 2>"$T/${mp##*/}.err" &
    FS_PID=$!
    PIDS+=("$FS_PID")
    MOUNTS+=("$mp")
    if ! wait_for 10 test -f "$mp/README"; then
        log "proviumfs did not come up on $mp"
        return 1
    fi
}

# stop_fs PID MOUNTPOINT: SIGTERM, wait for the exit and the unmount.
stop_fs() {
    kill -TERM "$1" 2>/dev/null
    wait_for 10 eval "! kill -0 $1 2>/dev/null" && ! mounted "$2"
}
