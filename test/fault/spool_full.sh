#!/usr/bin/env bash
# spool_full.sh - the daemon's spool file system fills while appended
# bytes wait in the spool's write-behind buffer (issue 12, bad input):
# the stream ends with an error that says the file system is full, and
# nothing a reader was ever able to read is lost: `data` and `log` give
# every byte the stream recorded (written or still in memory), a prefix
# of the file, then the error; the daemon serves on, and a stream opened
# after the full one is closed works.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

small_tmpfs "$T/tiny" 1m
start_fs --spool-dir "$T/tiny"
F=$T/app.log
: >"$F"
new_stream 3 "tail_file host $F keep" || exit 1
S=$MP/streams/$ID
# A reader attached before the bytes come: it follows the live stream,
# served from the write-behind buffer as well as from the file.
cat "$S/data" >"$T/live.out" 2>"$T/live.err" &
LIVE=$!
PIDS+=($LIVE)
wait_for 5 eval 'grep -q "^parked: 1$" "$MP/ctl"'

# 4 MiB into a 1 MiB file system, in 64 KiB writes (frames of up to one
# agent read): flushes fail part-way with bytes still buffered.
head -c 4M /dev/urandom >"$T/src"
dd if="$T/src" of="$F" bs=64k oflag=append conv=notrunc status=none
check "the stream ends" wait_for 15 grep -qx "state: ended" "$S/info"
check "info says the spool's file system is full ($(grep '^error:' "$S/info"))" \
    grep -qx "error: history spool write failed: No space left on device (the spool file system is full)" "$S/info"
bytes=$(sed -n 's/^bytes: //p' "$S/info")
check "some bytes were recorded, not all ($bytes)" \
    eval '[ "$bytes" -gt 0 ] && [ "$bytes" -lt $((4 << 20)) ]'
# More than the file system holds: bytes the flush could not write are
# history too (the data file cannot hold all of them).
check "bytes recorded past what the spool file system holds ($bytes B; $(df -k --output=used "$T/tiny" | tail -1) KiB used)" \
    test "$bytes" -gt $(($(df -k --output=used "$T/tiny" | tail -1) * 1024))

reap $LIVE 10
rc=$?
check "the live reader ends with an error (cat exited $rc)" test $rc -eq 1
check "its error is ENOSPC ($(cat "$T/live.err"))" \
    grep -q "No space left on device" "$T/live.err"
check "the live reader got every recorded byte ($(stat -c %s "$T/live.out"))" \
    test "$(stat -c %s "$T/live.out")" -eq "$bytes"
check "... the file's first bytes, intact" \
    cmp "$T/live.out" <(head -c "$bytes" "$T/src")

timeout 10 cat "$S/data" >"$T/late.out" 2>"$T/late.err"
rc=$?
check "a reader opened after the end: the same bytes then the error ($rc)" \
    eval '[ $rc -eq 1 ] && cmp -s "$T/late.out" "$T/live.out" &&
          grep -q "No space left on device" "$T/late.err"'
check "log holds the same bytes" cmp "$S/log" "$T/live.out"
ctl_cmd 3 "read_until never 1s"
check "an op after the end names the cause ($STATUS $PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == *"No space left on device (the spool file system is full)" ]]'

# The daemon serves on; once the full stream is closed its spool is freed
# and a new stream records again.
ctl_cmd 3 close
exec 3>&-
check "the closed stream is gone" wait_for 5 eval '[ ! -e "$S" ]'
: >"$T/g.log"
new_stream 4 "tail_file host $T/g.log" || exit 1
echo "after the full spool" >>"$T/g.log"
check "a new stream records" \
    wait_for 5 eval '[ "$(cat "$MP/streams/$ID/log")" = "after the full spool" ]'
exec 4>&-
stop_fs
check "the daemon exits cleanly ($?)" test $? -eq 0
