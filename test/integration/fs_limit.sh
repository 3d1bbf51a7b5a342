#!/usr/bin/env bash
# fs_limit.sh - the per-stream history limit through the mount (SPEC §6.3,
# --history-limit): the stream ends with an error that says so, data
# readers get the bytes before it intact and then the errno (EFBIG), ops
# get the bytes then an error, and nothing is dropped in silence.
. "$(dirname "$0")/lib.sh"

start_fs --history-limit 1K
check "the status shows the limit" grep -qx "history_limit: 1024" "$MP/ctl"
F=$T/app.log
: >"$F"
new_stream 3 "tail_file host $F" || exit 1
S=$MP/streams/$ID

# One agent read is one frame: the second write arrives on its own.
head -c 600 /dev/urandom >"$T/first"
head -c 600 /dev/urandom >"$T/second"
cat "$T/first" >>"$F"
need "the first 600 bytes are recorded" \
    wait_for 5 grep -qx "bytes: 600" "$S/info"
cat "$T/second" >>"$F"
check "the stream ends at the limit" wait_for 5 grep -qx "state: ended" "$S/info"
msg="history limit of 1024 bytes reached (a 600-byte frame did not fit)"
check "info names the cause" grep -qxF "error: $msg" "$S/info"
check "nothing past the limit was recorded" grep -qx "bytes: 600" "$S/info"

# A data reader: every byte before the limit, then EFBIG (not a clean
# end of file, which would pass the loss off as the whole stream).
timeout 5 cat "$S/data" >"$T/data.out" 2>"$T/data.err"
rc=$?
check "cat data fails at the limit (exit status $rc, not 0, not killed)" \
    test $rc -eq 1
check "cat data: the error is EFBIG ($(cat "$T/data.err"))" \
    grep -q "File too large" "$T/data.err"
check "cat data: the bytes before the limit, intact" cmp "$T/data.out" "$T/first"
check "the log holds them too" cmp "$S/log" "$T/first"

# The test's ops: the frame, then an error naming the limit.
ctl_cmd 3 "next 1s"
check "next: the recorded frame" \
    eval '[ "$STATUS" = ok ] && cmp -s "$T/payload" "$T/first"'
ctl_cmd 3 "next 1s"
check "next at the limit: error ($STATUS $PAYLOAD)" \
    test "$STATUS" = error -a "$PAYLOAD" = "stream EOF; $msg"
ctl_cmd 3 "read_until never 1s"
check "read_until at the limit: the same error" \
    test "$STATUS" = error -a "$PAYLOAD" = "stream EOF; $msg"
ctl_cmd 3 "eof"
check "eof: true" test "$STATUS" = ok -a "$PAYLOAD" = true
exec 3>&-

check "a bad --history-limit is refused before mounting" \
    eval '! "$FS_BIN" --history-limit 12Q "$T/never" 2>"$T/bad.err" &&
          grep -q "history-limit .12Q.: not a size" "$T/bad.err" &&
          ! grep -q " $T/never " /proc/mounts'
