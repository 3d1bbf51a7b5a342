#!/usr/bin/env bash
# fs_fanout.sh [READERS] [MIB] - issue 4 benchmark (c): READERS (default
# 100) concurrent `cat data` of one live stream while MIB (default 64) are
# appended to its file; every reader's sha256 must equal the file's.
# Baseline: one sha256sum of the file.
#   PROVIUM_BUILD_DIR=build test/bench/fs_fanout.sh [READERS] [MIB]
. "$(dirname "$0")/../integration/lib.sh"

R=${1:-100}
MIB=${2:-64}
start_fs --history-limit 0
F=$T/src.bin
: >"$F"
new_stream 3 "tail_file host $F start=beginning" || exit 1
S=$MP/streams/$ID
for i in $(seq "$R"); do
    (cat "$S/data" | sha256sum >"$T/sum$i") 3>&- &
    PIDS+=($!)
done
wait_for 30 eval 'grep -q "^readers: $R$" "$S/info"'
head -c "${MIB}M" /dev/urandom >"$T/done.bin"
t0=$(now_ms)
dd if="$T/done.bin" of="$F" bs=64K oflag=append conv=notrunc status=none
size=$(stat -c %s "$F")
wait_for 120 eval '[ "$(sed -n "s/^bytes: //p" "$S/info")" -eq $size ]'
rm -f "$F" # deleted, nothing at its name: the stream ends, the cats end
for p in "${PIDS[@]}"; do wait "$p"; done
t1=$(now_ms)
want=$(sha256sum <"$T/done.bin")
good=0
for i in $(seq "$R"); do [ "$(cat "$T/sum$i")" = "$want" ] && good=$((good + 1)); done
b0=$(now_ms); sha256sum "$T/done.bin" >/dev/null; b1=$(now_ms)
printf '%d readers x %d MiB: %d/%d checksums match; all done in %d ms (%d MiB/s delivered in total)\n' \
    "$R" "$MIB" "$good" "$R" $((t1 - t0)) $((R * MIB * 1000 / (t1 - t0)))
printf 'baseline: one sha256sum of the file: %d ms\n' $((b1 - b0))
[ "$good" -eq "$R" ] || fail "a reader missed bytes"
exec 3>&-
