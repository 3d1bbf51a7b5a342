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
