#!/usr/bin/env bash
# fs_fanout.sh [READERS] [MIB] [THREADS...] - many readers of one stream.
#
# (1) Issue 12 (d): READERS (default 50) concurrent `cat data` of one
#     stream of MIB (default 64) MiB already in the spool, beside READERS
#     concurrent `cat` of a plain file with the same bytes (page-cached),
#     alternating, RUNS runs each; medians and the ratio (target <= 2x).
#     With THREADS given (e.g. `0 1 2 4`), the daemon is started once per
#     value of --reply-threads and each is measured the same way.
# (2) Issue 4 (c): READERS `cat data | sha256sum` attached to an empty
#     stream, then MIB appended to the tailed file in 64 KiB writes; every
#     reader's sha256 must equal the file's.
#   PROVIUM_BUILD_DIR=build test/bench/fs_fanout.sh [READERS] [MIB] [THREADS...]
. "$(dirname "$0")/../integration/lib.sh"

R=${1:-50}
MIB=${2:-64}
shift 2 2>/dev/null
THREADS=("$@")
RUNS=${RUNS:-5}
median() { sort -n | sed -n "$(((RUNS + 1) / 2))p"; }
lscpu | sed -n 's/^Model name: *//p' | sed 's/^/cpu: /'
echo "nproc: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"

head -c "${MIB}M" /dev/urandom >"$T/plain.bin"

# fanout_spooled LABEL [proviumfs options]: part (1) on a fresh daemon.
fanout_spooled() {
    local label=$1 i t0 t1 pids=()
    shift
    start_fs --history-limit 0 "$@"
    cp "$T/plain.bin" "$T/src.bin"
    new_stream 3 "tail_file host $T/src.bin start=beginning" || exit 1
    local S=$MP/streams/$ID size=$((MIB << 20))
    wait_for 120 eval '[ "$(sed -n "s/^bytes: //p" "$S/info")" -eq $size ]' ||
        { log "stream did not fill"; exit 1; }
    rm -f "$T/src.bin" # the stream ends: every cat ends
    wait_for 10 grep -q "^state: ended" "$S/info"
    cat "$S/data" >/dev/null
    cat "$T/plain.bin" >/dev/null
    : >"$T/f.$label"
    : >"$T/p.$label"
    for run in $(seq "$RUNS"); do
        t0=$(now_ms)
        for i in $(seq "$R"); do cat "$S/data" >/dev/null & pids[i]=$!; done
        wait "${pids[@]}"
        t1=$(now_ms)
        echo $((t1 - t0)) >>"$T/f.$label"
        t0=$(now_ms)
        for i in $(seq "$R"); do cat "$T/plain.bin" >/dev/null & pids[i]=$!; done
        wait "${pids[@]}"
        t1=$(now_ms)
        echo $((t1 - t0)) >>"$T/p.$label"
    done
    local f p
    f=$(median <"$T/f.$label")
    p=$(median <"$T/p.$label")
    printf '%s: %d x cat data (%d MiB):  runs %s ms, median %d ms\n' "$label" \
        "$R" "$MIB" "$(tr '\n' ' ' <"$T/f.$label")" "$f"
    printf '%s: %d x cat plain file:      runs %s ms, median %d ms\n' "$label" \
        "$R" "$(tr '\n' ' ' <"$T/p.$label")" "$p"
    printf '%s: ratio data / plain: %s\n' "$label" \
        "$(awk -v f="$f" -v p="$p" 'BEGIN { printf "%.2f", f / p }')"
    exec 3>&-
    stop_fs || fail "daemon exit"
}

if [ ${#THREADS[@]} -eq 0 ]; then
    fanout_spooled default
else
    for n in "${THREADS[@]}"; do fanout_spooled "threads=$n" --reply-threads "$n"; done
fi

# (2) live, checksummed.
start_fs --history-limit 0
F=$T/live.bin
: >"$F"
new_stream 3 "tail_file host $F start=beginning" || exit 1
S=$MP/streams/$ID
for i in $(seq "$R"); do
    (cat "$S/data" | sha256sum >"$T/sum$i") 3>&- &
    PIDS+=($!)
done
wait_for 30 eval 'grep -q "^readers: $R$" "$S/info"'
t0=$(now_ms)
dd if="$T/plain.bin" of="$F" bs=64K oflag=append conv=notrunc status=none
size=$(stat -c %s "$F")
wait_for 120 eval '[ "$(sed -n "s/^bytes: //p" "$S/info")" -eq $size ]'
rm -f "$F" # deleted, nothing at its name: the stream ends, the cats end
for p in "${PIDS[@]}"; do wait "$p"; done
t1=$(now_ms)
want=$(sha256sum <"$T/plain.bin")
good=0
for i in $(seq "$R"); do [ "$(cat "$T/sum$i")" = "$want" ] && good=$((good + 1)); done
b0=$(now_ms); sha256sum "$T/plain.bin" >/dev/null; b1=$(now_ms)
printf 'live: %d readers x %d MiB: %d/%d checksums match; all done in %d ms (%d MiB/s delivered in total)\n' \
    "$R" "$MIB" "$good" "$R" $((t1 - t0)) $((R * MIB * 1000 / (t1 - t0)))
printf 'live: baseline: one sha256sum of the file: %d ms\n' $((b1 - b0))
[ "$good" -eq "$R" ] || fail "a reader missed bytes"
exec 3>&-
