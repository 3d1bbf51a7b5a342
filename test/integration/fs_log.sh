#!/usr/bin/env bash
# fs_log.sh - streams/<id>/log (SPEC §4.2): a regular file whose size
# grows with the stream, so tail -f, grep, head -c and offset reads work.
. "$(dirname "$0")/lib.sh"

start_fs
F=$T/app.log
for i in $(seq 1 50); do echo "boot line $i"; done >"$F"
new_stream 3 "tail_file host $F start=beginning" || exit 1
L=$MP/streams/$ID/log
check "st_size reaches the history size" \
    wait_for 3 eval '[ "$(stat -c %s "$L")" -eq "$(stat -c %s "$F")" ]'
check "grep -c on log" eval '[ "$(grep -c "boot line" "$L")" -eq 50 ]'
check "head -c 9" eval '[ "$(head -c 9 "$L")" = "boot line" ]'
check "read at an offset (less, dd skip)" \
    eval '[ "$(dd if="$L" bs=1 skip=10 count=2 status=none)" = "1$(printf "\\n")" -o "$(dd if="$L" bs=1 skip=10 count=1 status=none)" = 1 ]'
check "log equals the file" cmp -s "$L" "$F"

tail -n 0 -f "$L" >"$T/tail.out" &
TAIL=$!
PIDS+=($TAIL)
# tail -n 0 starts at the end of the file as it finds it when it opens it:
# append only once it has the log open (it then polls st_size every 1 s).
need "tail -f holds the log open" \
    wait_for 5 eval 'ls -l /proc/$TAIL/fd 2>/dev/null | grep -qF "$L"'
wait_for 5 eval 'grep -q "^pos:[[:space:]]*$(stat -c %s "$L")$" /proc/$TAIL/fdinfo/* 2>/dev/null' ||
    log "note: could not see tail's offset; appending anyway"
echo "late line A" >>"$F"
echo "late line B" >>"$F"
check "tail -f log shows appended lines (within its 1 s poll)" \
    wait_for 4 grep -q "late line B" "$T/tail.out"
check "tail -f printed only the new lines" \
    eval '[ "$(cat "$T/tail.out")" = "late line A
late line B" ]'
kill $TAIL

check "writing to log is refused" eval '! (echo x >>"$L") 2>/dev/null'
check "writing to data is refused" \
    eval '! (echo x >>"$MP/streams/$ID/data") 2>/dev/null'
check "writing to README is refused" eval '! (echo x >>"$MP/README") 2>/dev/null'
exec 3>&-
