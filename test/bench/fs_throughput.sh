#!/usr/bin/env bash
# fs_throughput.sh [MIB] - issue 4 benchmark (a): `cat data > /dev/null`
# of a stream whose whole history (default 1024 MiB) is already in the
# spool, beside `cat` of a plain file of the same size, in the same run,
# interleaved, 5 runs each; medians and the ratio. Target: >= 50%.
#   PROVIUM_BUILD_DIR=build test/bench/fs_throughput.sh [MIB]
. "$(dirname "$0")/../integration/lib.sh"

MIB=${1:-1024}
RUNS=5
start_fs --history-limit 0
A=$T/source.bin
B=$T/plain.bin
head -c "${MIB}M" /dev/urandom >"$A"
cp "$A" "$B"
new_stream 3 "tail_file host $A start=beginning" || exit 1
S=$MP/streams/$ID
size=$((MIB * 1024 * 1024))
wait_for 300 eval '[ "$(sed -n "s/^bytes: //p" "$S/info")" -eq $size ]' ||
    { log "stream did not fill"; exit 1; }
rm -f "$A" # the tailed file is gone: the stream ends, cat data ends
wait_for 10 grep -q "^state: ended" "$S/info"
cat "$B" >/dev/null # warm the page cache for both sides alike
cat "$S/data" >/dev/null

mibps() { echo $((MIB * 1000 / $1)); }
median() { sort -n | sed -n "$(((RUNS + 1) / 2))p"; }
for i in $(seq $RUNS); do
    t0=$(now_ms); cat "$S/data" >/dev/null; t1=$(now_ms)
    echo $((t1 - t0)) >>"$T/fuse"
    t0=$(now_ms); cat "$B" >/dev/null; t1=$(now_ms)
    echo $((t1 - t0)) >>"$T/plain"
    t0=$(now_ms); dd if="$S/data" of=/dev/null bs=1M status=none; t1=$(now_ms)
    echo $((t1 - t0)) >>"$T/dd"
done
f=$(median <"$T/fuse")
p=$(median <"$T/plain")
d=$(median <"$T/dd")
printf 'cat data (FUSE, %d MiB):   runs %s ms, median %d ms = %d MiB/s\n' \
    "$MIB" "$(tr '\n' ' ' <"$T/fuse")" "$f" "$(mibps "$f")"
printf 'cat plain file:            runs %s ms, median %d ms = %d MiB/s\n' \
    "$(tr '\n' ' ' <"$T/plain")" "$p" "$(mibps "$p")"
printf 'dd bs=1M data (FUSE):      runs %s ms, median %d ms = %d MiB/s\n' \
    "$(tr '\n' ' ' <"$T/dd")" "$d" "$(mibps "$d")"
printf 'ratio cat data / cat plain: %s%%\n' "$((p * 100 / f))"
exec 3>&-
