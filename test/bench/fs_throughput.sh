#!/usr/bin/env bash
# fs_throughput.sh [MIB] - reading a stream whose whole history (default
# 1024 MiB of log-like text) is already in the spool, beside the same
# bytes in a plain file on the same file system (page-cached), in the same
# run, alternating, RUNS (5) runs of each line; medians and ratios.
#
#   cat data             vs cat plain            (issue 12 target >= 90%)
#   dd if=data bs=1M     vs dd if=plain bs=1M    (>= 90%)
#   grep -c needle log   vs grep -c needle plain (>= 80%)
#
# `log` is page-cached (docs/fs.md): its first grep reads from the daemon
# (shown on its own line, "cold"), the runs after it from the kernel's
# cache. (No drop_caches: other work on the machine would pay for it.) With MODES (default "default") also: `nosplice` (the copy
# fallback, PROVIUM_NO_SPLICE=1), `logdirect` (log opened direct_io, as
# before issue 12, PROVIUM_LOG_DIRECT_IO=1), `loop` (--reply-threads 0).
#   PROVIUM_BUILD_DIR=build test/bench/fs_throughput.sh [MIB]
. "$(dirname "$0")/../integration/lib.sh"

MIB=${1:-1024}
RUNS=${RUNS:-5}
MODES=${MODES:-default}
median() { sort -n | sed -n "$(((RUNS + 1) / 2))p"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d%%", a * 100 / b }'; }
lscpu | sed -n 's/^Model name: *//p' | sed 's/^/cpu: /'
echo "nproc: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg); $(uname -r)"

# Log-like lines, one in 4096 with the needle: 1 MiB made once, repeated.
awk 'BEGIN { srand(12); while (n < 1048576) {
        l = sprintf("2026-11-30T14:%02d:%02d.%06d host app[%d]: request %d served in %d us%s",
                    int(rand() * 60), int(rand() * 60), int(rand() * 1e6),
                    1000 + int(rand() * 9000), NR++, int(rand() * 5000),
                    rand() < 1 / 4096 ? " zebra" : "");
        print l; n += length(l) + 1 } }' | head -c 1048576 >"$T/chunk"
for i in $(seq "$MIB"); do cat "$T/chunk"; done >"$T/plain.bin"
rm -f "$T/chunk"
want=$(grep -c zebra "$T/plain.bin")

# time_ms CMD...: milliseconds CMD took, its output to /dev/null; grep's
# (a count) to a file: GNU grep writing to /dev/null stops at the first
# match.
time_ms() {
    local t0 t1
    t0=$(now_ms)
    if [ "$1" = grep ]; then "$@" >"$T/grep.out"; else "$@" >/dev/null; fi
    t1=$(now_ms)
    echo $((t1 - t0))
}

# measure MODE: one daemon, every line of the table for it.
measure() {
    local mode=$1 env=() opts=() S size i
    case $mode in
    nosplice) env=(PROVIUM_NO_SPLICE=1) ;;
    logdirect) env=(PROVIUM_LOG_DIRECT_IO=1) ;;
    loop) opts=(--reply-threads 0) ;;
    esac
    for e in "${env[@]}"; do export "${e?}"; done
    start_fs --history-limit 0 "${opts[@]}"
    for e in "${env[@]}"; do unset "${e%%=*}"; done
    cp "$T/plain.bin" "$T/source.bin"
    new_stream 3 "tail_file host $T/source.bin start=beginning" || exit 1
    S=$MP/streams/$ID
    size=$((MIB << 20))
    wait_for 300 eval '[ "$(sed -n "s/^bytes: //p" "$S/info")" -eq $size ]' ||
        { log "stream did not fill"; exit 1; }
    rm -f "$T/source.bin" # the stream ends, so cat data ends
    wait_for 10 grep -q "^state: ended" "$S/info"
    # The first grep of log reads it from the daemon (nothing cached).
    local cold
    cold=$(time_ms grep -c zebra "$S/log")
    [ "$(cat "$T/grep.out")" -eq "$want" ] || fail "$mode: grep -c log"
    cat "$T/plain.bin" >/dev/null
    cat "$S/data" >/dev/null
    for f in cat dd grep; do : >"$T/$mode.$f.fuse"; : >"$T/$mode.$f.plain"; done
    for i in $(seq "$RUNS"); do
        time_ms cat "$S/data" >>"$T/$mode.cat.fuse"
        time_ms cat "$T/plain.bin" >>"$T/$mode.cat.plain"
        time_ms dd if="$S/data" bs=1M status=none >>"$T/$mode.dd.fuse"
        time_ms dd if="$T/plain.bin" bs=1M status=none >>"$T/$mode.dd.plain"
        time_ms grep -c zebra "$S/log" >>"$T/$mode.grep.fuse"
        time_ms grep -c zebra "$T/plain.bin" >>"$T/$mode.grep.plain"
    done
    for f in cat dd grep; do
        local a b
        a=$(median <"$T/$mode.$f.fuse")
        b=$(median <"$T/$mode.$f.plain")
        printf '%-9s %-4s stream: runs %s ms, median %d ms (%d MiB/s) | plain: runs %s ms, median %d ms | %s\n' \
            "$mode" "$f" "$(tr '\n' ' ' <"$T/$mode.$f.fuse")" "$a" $((MIB * 1000 / (a ? a : 1))) \
            "$(tr '\n' ' ' <"$T/$mode.$f.plain")" "$b" "$(pct "$b" "$a")"
    done
    printf '%-9s grep log, cold (its first read, from the daemon): %d ms\n' "$mode" "$cold"
    exec 3>&-
    stop_fs || fail "daemon exit"
}

for m in $MODES; do measure "$m"; done
