#!/usr/bin/env bash
# sweep.sh - nothing a test started outlives it, even when ctest kills it.
#
# ctest's timeout SIGKILLs the test's own process and nothing else: its
# daemon, agents, readers and QEMU go on, its FUSE mount stays (dead), its
# network namespaces stay. So every test registers what it makes in a file
# under the run directory ($PROVIUM_RUN_DIR, in the build tree), and
# everything that must not outlive it can be found from that file alone:
#
#   owner PID START    the test's shell (START: /proc starttime, so a reused
#                      pid is not mistaken for it)
#   session SID        every process of that session is the test's: the
#                      test re-execs itself under setsid(1) (session_enter)
#   pgid PGID          the same by process group (a test run by hand from an
#                      interactive shell already leads its own group)
#   pid PID START      one process (when no session could be made)
#   vmroot DIR         provium-vm state root: every VM in it is stopped
#                      (QEMU daemonizes, so it leaves the session)
#   mount DIR          a mount point: unmounted (lazily) if still mounted
#   netns NAME         a network namespace: deleted
#   dir DIR            a scratch directory: mounts under it unmounted, then
#                      removed (never across a mount)
#
# A test's own teardown sweeps its file last (session_end): what its
# orderly cleanup missed is killed there. The ctest fixtures sweep_before
# and sweep_after (test/CMakeLists.txt) sweep the files of tests that are
# no longer running, i.e. that were killed.
#
# Sourced (by test/integration/lib.sh and test/criterion.sh) it defines
# the functions; run as `sweep.sh RUN_DIR [--strict]` it sweeps every
# leftover registration, and with --strict exits 1 if there was any;
# `sweep.sh RUN_DIR --all` also kills the tests still running there (a
# harness tearing down, e.g. test/mutate.sh).

sweep_log() { printf 'sweep: %s\n' "$*" >&2; }

# proc_stat PID: the fields of /proc/PID/stat after the command name, in
# the array STAT (STAT[0] is field 3, state; [2] pgrp; [3] session; [19]
# starttime). Builtins only: no process is created.
proc_stat() {
    local s
    { IFS= read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    read -r -a STAT <<<"$s"
}

proc_start() { proc_stat "$1" && printf '%s' "${STAT[19]}"; }

# Is PID alive and the same process as when START was taken?
proc_same() {
    proc_stat "$1" || return 1
    [ "${STAT[0]}" != Z ] && [ "${STAT[19]}" = "$2" ]
}

# sweep_members session|pgid ID EXCLUDE...: the pids in that session or
# process group, into the array MEMBERS. Builtins only, so the listing
# itself adds no member.
sweep_members() {
    local how=$1 id=$2 d pid x skip
    shift 2
    MEMBERS=()
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        proc_stat "$pid" || continue
        [ "${STAT[0]}" = Z ] && continue
        if [ "$how" = session ]; then
            [ "${STAT[3]}" = "$id" ] || continue
        else
            [ "${STAT[2]}" = "$id" ] || continue
        fi
        skip=
        for x in "$@"; do [ "$pid" = "$x" ] && skip=1; done
        [ -z "$skip" ] && MEMBERS+=("$pid")
    done
}

# Kill the members of a session or group: TERM, then KILL what is left
# after a grace period (a daemon answers its parked readers on TERM).
sweep_kill_group() { # how id exclude...
    local how=$1 id=$2 i
    sweep_members "$@"
    [ ${#MEMBERS[@]} -eq 0 ] && return 0
    sweep_log "$how $id: TERM ${MEMBERS[*]}"
    kill -TERM "${MEMBERS[@]}" 2>/dev/null
    for ((i = 0; i < 40; i++)); do
        sweep_members "$@"
        [ ${#MEMBERS[@]} -eq 0 ] && return 0
        sleep 0.05 # polling for exits: no fd to wait on for a non-child
    done
    sweep_log "$how $id: KILL ${MEMBERS[*]}"
    kill -KILL "${MEMBERS[@]}" 2>/dev/null
    for ((i = 0; i < 40; i++)); do
        sweep_members "$@"
        [ ${#MEMBERS[@]} -eq 0 ] && return 0
        sleep 0.05
    done
    sweep_log "$how $id: still alive: ${MEMBERS[*]}"
    return 1
}

sweep_mounted() { grep -qF " $1 " /proc/mounts 2>/dev/null; }

# sweep_reg REG [EXCLUDE_PID...]: undo everything REG names, then remove
# it. Returns 1 if something could not be undone. Sets SWEPT to the number
# of things that were still there.
sweep_reg() {
    local reg=$1 kind a b rc=0 d name
    shift
    local -a sessions=() pgids=() pids=() vmroots=() mounts=() nets=() dirs=()
    SWEPT=0
    [ -f "$reg" ] || return 0
    while read -r kind a b; do
        case $kind in
        session) sessions+=("$a") ;;
        pgid) pgids+=("$a") ;;
        pid) pids+=("$a:$b") ;;
        vmroot) vmroots+=("$a") ;;
        mount) mounts+=("$a") ;;
        netns) nets+=("$a") ;;
        dir) dirs+=("$a") ;;
        esac
    done <"$reg"
    # VMs first: stopping one sends `vm del` to its mount, still alive.
    for a in "${vmroots[@]}"; do
        for d in "$a"/*/; do
            [ -f "$d/qemu.pid" ] || continue
            name=$(basename "$d")
            sweep_log "stopping VM $name ($a)"
            SWEPT=$((SWEPT + 1))
            PROVIUM_VM_DIR=$a "${PROVIUM_SOURCE_DIR:-$(dirname "${BASH_SOURCE[0]}")/..}/contrib/provium-vm" \
                stop "$name" --grace 2 >/dev/null 2>&1 || rc=1
        done
    done
    for a in "${sessions[@]}"; do
        sweep_members session "$a" "$@"
        [ ${#MEMBERS[@]} -gt 0 ] && SWEPT=$((SWEPT + ${#MEMBERS[@]}))
        sweep_kill_group session "$a" "$@" || rc=1
    done
    for a in "${pgids[@]}"; do
        sweep_members pgid "$a" "$@"
        [ ${#MEMBERS[@]} -gt 0 ] && SWEPT=$((SWEPT + ${#MEMBERS[@]}))
        sweep_kill_group pgid "$a" "$@" || rc=1
    done
    for a in "${pids[@]}"; do
        if proc_same "${a%%:*}" "${a#*:}"; then
            sweep_log "killing pid ${a%%:*}"
            SWEPT=$((SWEPT + 1))
            kill -KILL "${a%%:*}" 2>/dev/null
        fi
    done
    for a in "${mounts[@]}"; do
        sweep_mounted "$a" || continue
        sweep_log "unmounting $a"
        SWEPT=$((SWEPT + 1))
        fusermount3 -u -z "$a" 2>/dev/null || umount -l "$a" 2>/dev/null ||
            { sweep_log "cannot unmount $a"; rc=1; }
    done
    for a in "${nets[@]}"; do
        [ -e "/run/netns/$a" ] || continue
        sweep_log "deleting netns $a"
        SWEPT=$((SWEPT + 1))
        ip netns del "$a" 2>/dev/null || { sweep_log "cannot delete netns $a"; rc=1; }
    done
    for a in "${dirs[@]}"; do
        [ -e "$a" ] || continue
        # Mounts inside a scratch directory are the test's too: deepest
        # first (a test need not register each one).
        while read -r _ d _; do
            SWEPT=$((SWEPT + 1))
            sweep_log "unmounting $d"
            fusermount3 -u -z "$d" 2>/dev/null || umount -l "$d" 2>/dev/null
        done < <(grep -F " $a/" /proc/mounts 2>/dev/null | sort -k2,2r)
        # A mount still inside (unmount failed) must not be descended.
        if grep -qF " $a/" /proc/mounts 2>/dev/null; then
            sweep_log "not removing $a: a mount is inside"
            rc=1
            continue
        fi
        rm -rf --one-file-system "$a" 2>/dev/null || rc=1
    done
    rm -f "$reg"
    return $rc
}

# sweep_dir RUN_DIR [all]: sweep the registrations whose owner is gone
# (with `all`, also those of tests still running: they are killed).
sweep_dir() {
    local dir=$1 all=${2:-} reg owner start total=0 rc=0
    for reg in "$dir"/*.reg; do
        [ -f "$reg" ] || continue
        read -r _ owner start < <(grep -m1 '^owner ' "$reg")
        if [ -z "$all" ] && [ -n "${owner:-}" ] && proc_same "$owner" "$start"; then
            continue # still running
        fi
        sweep_log "leftovers of $(basename "$reg" .reg):"
        sweep_reg "$reg" $$ || rc=1
        total=$((total + SWEPT))
    done
    SWEPT=$total
    return $rc
}

# ---- the test's side -----------------------------------------------

# session_enter "$@": re-exec the calling script in a session of its own,
# so that everything it starts can be swept by session id. Under ctest
# the script is no process group leader, so setsid(1) needs no fork: the
# pid ctest waits for and may kill stays the same.
session_enter() {
    [ "${PROVIUM_TEST_SESSION:-}" = "$$" ] && return 0
    proc_stat $$ || return 0
    if [ "${STAT[2]}" != $$ ] && command -v setsid >/dev/null; then
        export PROVIUM_TEST_SESSION=$$
        exec setsid "$BASH" "$0" "$@"
    fi
}

# reg_begin NAME: create this test's registration file (REG, exported as
# PROVIUM_TEST_REG for the programs it runs) and record the owner and its
# session or group.
reg_begin() {
    local run=${PROVIUM_RUN_DIR:-${PROVIUM_BUILD_DIR:-/tmp}/test-run}
    mkdir -p "$run" || return 1
    REG=$run/$1.$$.reg
    export PROVIUM_TEST_REG=$REG
    proc_stat $$
    {
        echo "owner $$ ${STAT[19]}"
        if [ "${STAT[3]}" = $$ ]; then
            echo "session $$"
        elif [ "${STAT[2]}" = $$ ]; then
            echo "pgid $$"
        fi
    } >"$REG"
}

# register KIND VALUE [START]: one more thing to undo (see above).
register() {
    [ -n "${REG:-}" ] && printf '%s\n' "$*" >>"$REG"
}

# register_pid PID: a process, with its start time.
register_pid() { register pid "$1" "$(proc_start "$1")"; }

# reg_end: after the test's own cleanup, sweep what is left of it (every
# process of its session but this shell) and drop the file. Logs what it
# had to clean up; returns 1 if something could not be undone.
reg_end() {
    local rc=0
    [ -n "${REG:-}" ] || return 0
    sweep_reg "$REG" $$ || rc=1
    [ "$SWEPT" -gt 0 ] && sweep_log "$SWEPT leftover(s) of this test cleaned up"
    REG=
    return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    [ $# -ge 1 ] || { echo "usage: sweep.sh RUN_DIR [--strict|--all]" >&2; exit 2; }
    mkdir -p "$1"
    sweep_dir "$1" "$([ "${2:-}" = --all ] && echo all)"
    rc=$?
    if [ "$SWEPT" -gt 0 ]; then
        sweep_log "$SWEPT leftover(s) of killed tests removed"
        [ "${2:-}" = --strict ] && rc=1
    fi
    exit $rc
fi
