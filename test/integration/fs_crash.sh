#!/usr/bin/env bash
# fs_crash.sh - a daemon killed with -9 leaves no reader in D state (they
# get ECONNABORTED), and a new daemon mounts again: by detaching the stale
# mount itself, or after fusermount3 -u.
. "$(dirname "$0")/lib.sh"

crash_once() { # crash_once LABEL
    local F=$T/app.log cat rc dt t0
    : >"$F"
    ID=$(cat "$MP/clone")
    echo "tail_file host $F keep" >"$MP/streams/$ID/ctl"
    need "$1: stream live" \
        wait_for 2 grep -q "^state: live" "$MP/streams/$ID/info"
    cat "$MP/streams/$ID/data" >/dev/null 2>"$T/cat.err" &
    cat=$!
    PIDS+=($cat)
    need "$1: the read is parked" \
        wait_for 2 eval 'grep -q "^parked: 1" "$MP/ctl"'
    t0=$(now_ms)
    kill -9 "$FS_PID"
    wait "$FS_PID" 2>/dev/null
    FS_PID=
    check "$1: blocked cat ends" wait_for 2 eval '! kill -0 $cat 2>/dev/null'
    dt=$(($(now_ms) - t0))
    reap $cat
    rc=$?
    check "$1: blocked cat ended within 2 s with an error (${dt} ms, rc $rc)" \
        test $dt -lt 2000 -a $rc -eq 1
    check "$1: cat saw ECONNABORTED ($(cat "$T/cat.err"))" \
        grep -q "Software caused connection abort" "$T/cat.err"
    check "$1: no process of this test in D state" no_d_state
    check "$1: the dead mount says ENOTCONN" \
        eval 'ls "$MP" 2>&1 | grep -q "not connected"'
}

start_fs
crash_once "first crash"
start_fs # detaches the stale mount by itself
check "restarted over a stale mount" test -f "$MP/README"
check "restarted daemon serves the host VM" \
    wait_for 5 grep -q "^agent_state: up" "$MP/vms/host/info"
crash_once "second crash"
check "fusermount3 -u clears the dead mount" fusermount3 -u "$MP"
start_fs
check "restarted after fusermount3 -u" test -f "$MP/README"
