#!/usr/bin/env bash
# fs_small.sh - the smaller promises of issue 10 item 11 through a real
# mount: `read_until ""` matches at once (Provium: an empty pattern
# matches at 0), and a stream whose file was deleted says so:
# `stream EOF; file deleted`, as docs/lua.md promises.
. "$(dirname "$0")/lib_fs.sh"

start_fs
: >"$T/f.log"
new_stream 3 "tail_file host $T/f.log" || exit 1
t0=$(now_ms)
ctl_cmd 3 'read_until "" 5s'
dt=$(($(now_ms) - t0))
check "read_until \"\" on an empty stream: ok at once ($STATUS in ${dt} ms)" \
    test "$STATUS" = ok -a -z "$PAYLOAD" -a "$dt" -lt 2000
ctl_cmd 3 'expect "" 5s'
check "expect \"\" likewise ($STATUS)" test "$STATUS" = ok
echo data >>"$T/f.log"
ctl_cmd 3 'next 5s'
check "and nothing was consumed by them ($PAYLOAD)" test "$PAYLOAD" = data
rm "$T/f.log"
ctl_cmd 3 'next 5s'
check "a deleted file: stream EOF; file deleted ($STATUS $PAYLOAD)" \
    test "$STATUS $PAYLOAD" = "eof stream EOF; file deleted"
check "info says why it ended" grep -qx "end: file deleted" "$MP/streams/$ID/info"
exec 3>&-

# `echo close > ctl` closes a kept stream, though the file that wrote the
# close is released before the op's turn (found by chaos.sh): the close
# runs in its turn, after the ops written before it, and the stream's
# directory goes.
: >"$T/g.log"
for i in 1 2 3 4 5 6 7 8; do
    ID=$(cat "$MP/clone")
    echo "tail_file host $T/g.log keep" >"$MP/streams/$ID/ctl"
    need "kept stream $ID live" wait_for 5 grep -q "^state: live" "$MP/streams/$ID/info"
    echo close >"$MP/streams/$ID/ctl"
    check "echo close > ctl: stream $ID is gone" \
        wait_for 5 eval '[ ! -e "$MP/streams/$ID" ]'
done
# Behind a running op of another open: the close waits for its turn.
ID=$(cat "$MP/clone")
echo "tail_file host $T/g.log keep" >"$MP/streams/$ID/ctl"
need "kept stream $ID live" wait_for 5 grep -q "^state: live" "$MP/streams/$ID/info"
exec 4<>"$MP/streams/$ID/ctl"
printf 'expect "after" 10s\n' >&4
echo close >"$MP/streams/$ID/ctl"
check "the close waits behind the running expect" test -e "$MP/streams/$ID"
echo after >>"$T/g.log"
ctl_reply 4
check "the expect answered first ($STATUS)" test "$STATUS" = ok
check "then the close ran: stream $ID is gone" \
    wait_for 5 eval '[ ! -e "$MP/streams/$ID" ]'
exec 4>&-
