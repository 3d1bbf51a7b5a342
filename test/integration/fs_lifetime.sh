#!/usr/bin/env bash
# fs_lifetime.sh - stream lifetime (SPEC §4.4): owner release, keep,
# rmdir, clone slot reclaim, SIGTERM with blocked readers.
. "$(dirname "$0")/lib.sh"

start_fs
F=$T/app.log
: >"$F"

# --- the owner's close ends the stream
new_stream 3 "tail_file host $F" || exit 1
S=$MP/streams/$ID
# Not `cat ... &` alone: a child inherits fd 3, and with it the ownership.
cat "$S/data" >/dev/null 3>&- &
CAT=$!
PIDS+=($CAT)
check "stream directory exists" test -d "$S"
check "the reader is attached" wait_for 2 grep -q "^readers: 1" "$S/info"
exec 3>&-
check "owner closed: directory gone" wait_for 2 test ! -e "$S"
check "owner closed: blocked reader ended" \
    wait_for 2 eval '! kill -0 $CAT 2>/dev/null'

# --- the owner process dies: same
ID=$(cat "$MP/clone")
(exec 4<>"$MP/streams/$ID/ctl"; echo "tail_file host $F" >&4; IFS= read -r l <&4; kill -9 $BASHPID) 2>/dev/null
check "owner killed: directory gone" wait_for 2 test ! -e "$MP/streams/$ID"

# --- keep: survives its opener; rmdir ends it
ID=$(cat "$MP/clone")
echo "tail_file host $F keep" >"$MP/streams/$ID/ctl"
check "keep: survives the writer's close" \
    wait_for 2 grep -q "^state: live" "$MP/streams/$ID/info"
echo "kept" >>"$F"
check "keep: data flows" \
    eval '[ "$(timeout 2 head -c 4 "$MP/streams/$ID/data")" = kept ]'
check "rmdir closes a kept stream" rmdir "$MP/streams/$ID"
check "rmdir: gone" test ! -e "$MP/streams/$ID"
check "rmdir of a missing id: ENOENT" eval '! rmdir "$MP/streams/$ID" 2>/dev/null'

# --- unmount (SIGTERM) answers blocked readers first, then exits 0
ID=$(cat "$MP/clone")
echo "tail_file host $F keep" >"$MP/streams/$ID/ctl"
wait_for 2 grep -q "^state: live" "$MP/streams/$ID/info"
cat "$MP/streams/$ID/data" >/dev/null 2>"$T/cat.err" &
CAT=$!
PIDS+=($CAT)
exec 5<>"$MP/streams/$ID/ctl"
printf 'expect "never" 60s\n' >&5
# One read(2) for the whole reply: after unmount no second read can come.
(head -c 9 <&5 >"$T/ctl.out") &
R=$!
PIDS+=($R)
wait_for 2 eval 'grep -q "^parked: 2" "$MP/ctl"'
check "SIGTERM: daemon exits 0" stop_fs
check "SIGTERM: blocked cat ended" wait_for 2 eval '! kill -0 $CAT 2>/dev/null'
check "SIGTERM: blocked ctl reader got 'closed'" \
    wait_for 2 eval '[ "$(cat "$T/ctl.out" 2>/dev/null)" = "closed 13" ]'
check "SIGTERM: unmounted" eval '! grep -q " $MP " /proc/mounts'
exec 5>&-

# --- clone slots never opened are reclaimed after 30 s
start_fs
ID=$(cat "$MP/clone")
check "clone slot exists" test -d "$MP/streams/$ID"
check "clone slot reclaimed within 32 s" \
    wait_for 32 test ! -e "$MP/streams/$ID"
