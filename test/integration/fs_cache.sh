#!/usr/bin/env bash
# fs_cache.sh - what the kernel may cache of the mount (issue 12): a
# stream's directory and the names under it are cached (so `ls -l
# streams/` asks nothing per stream), yet a new stream is listed at once,
# a closed one is gone at once however it was closed, and `log` (page-
# cached) shows its growth in st_size and in its bytes.
. "$(dirname "$0")/lib.sh"

start_fs
ls -l "$MP/streams" >/dev/null
F=$T/a.src
printf 'first\n' >"$F"
new_stream 3 "tail_file host $F start=beginning" || exit 1
A=$ID
check "a new stream is listed at once" \
    eval 'ls -l "$MP/streams" | grep -q " $A$"'
check "and stat finds it" stat "$MP/streams/$A"
# Cached now: these must not outlive the stream. (A listing of a
# directory makes the kernel ask for its attributes again, atime: stat
# last.)
ls -l "$MP/streams" "$MP/streams/$A" >/dev/null
stat "$MP/streams/$A" "$MP/streams/$A/log" "$MP/streams/$A/data" >/dev/null

# log: st_size grows with the history; the bytes follow, though the
# kernel holds the page where the log ended when it was read.
need "log holds the first line" \
    wait_for 5 eval '[ "$(cat "$MP/streams/$A/log")" = first ]'
printf 'second\n' >>"$F"
check "log's st_size shows the growth" \
    wait_for 3 eval '[ "$(stat -c %s "$MP/streams/$A/log")" -eq 13 ]'
check "log reads the new bytes after the cached ones" \
    eval '[ "$(cat "$MP/streams/$A/log")" = "first
second" ]'
check "log's st_blksize asks for 1 MiB reads" \
    eval '[ "$(stat -c %o "$MP/streams/$A/log")" -eq 1048576 ] &&
          [ "$(stat -c %o "$MP/streams/$A/data")" -eq 1048576 ]'

# Closed by its `close` op: gone once the reply is read, no waiting.
ctl_cmd 3 close
check "close: ok" test "$STATUS" = ok
check "a closed stream is not listed" \
    eval '! ls -l "$MP/streams" | grep -q " $A$"'
check "a closed stream's directory is gone at once (not from a cache)" \
    eval '! stat "$MP/streams/$A" >/dev/null 2>&1'
check "so are its files" eval '! stat "$MP/streams/$A/log" >/dev/null 2>&1'
exec 3>&-

# Removed with rmdir.
new_stream 3 "tail_file host $F start=beginning keep" || exit 1
B=$ID
exec 3>&-
ls -l "$MP/streams" >/dev/null
stat "$MP/streams/$B" >/dev/null
check "rmdir of a stream" rmdir "$MP/streams/$B"
check "gone after rmdir" eval '! stat "$MP/streams/$B" >/dev/null 2>&1'
check "not listed after rmdir" eval '! ls "$MP/streams" | grep -qx "$B"'

# Closed by its owner's release (asynchronous: close(2) does not wait for
# the daemon), then gone within a moment, not after the cache's timeout.
new_stream 3 "tail_file host $F start=beginning" || exit 1
C=$ID
ls -l "$MP/streams" >/dev/null
stat "$MP/streams/$C" >/dev/null
exec 3>&-
check "a stream closed by its owner's release is gone" \
    wait_for 2 eval '! stat "$MP/streams/$C" >/dev/null 2>&1'
check "and not listed" eval '! ls "$MP/streams" | grep -qx "$C"'

# A new id after all that: listed at once.
new_stream 3 "tail_file host $F start=beginning" || exit 1
check "the next stream is listed at once" \
    eval 'ls "$MP/streams" | grep -qx "$ID"'
exec 3>&-
