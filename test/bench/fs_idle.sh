#!/usr/bin/env bash
# fs_idle.sh [N] - issue 4 benchmark (b): N streams (default 1000), each
# with a `cat data` reader parked on it: the daemon's RSS per stream, its
# CPU (and its agent's) while idle for 10 s, and the wake-up latency of one
# parked reader when its tailed file grows (append → read(2) returns),
# beside the same wake-up through a FIFO as the floor.
#   PROVIUM_BUILD_DIR=build test/bench/fs_idle.sh [N]
. "$(dirname "$0")/../integration/lib.sh"

N=${1:-1000}
start_fs
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
AGENT=$(pgrep -P "$FS_PID" provium-agent | head -1)
rss0=$(rss "$FS_PID")
ids=()
for i in $(seq "$N"); do
    : >"$T/f$i"
    id=$(cat "$MP/clone")
    echo "tail_file host $T/f$i keep" >"$MP/streams/$id/ctl"
    ids+=("$id")
done
wait_for 60 eval 'grep -q "^streams: $N$" "$MP/ctl"'
for i in $(seq "$N"); do
    cat "$MP/streams/${ids[$((i - 1))]}/data" >/dev/null &
    PIDS+=($!)
done
wait_for 60 eval 'grep -q "^parked: $N$" "$MP/ctl"' ||
    { log "readers did not park"; grep parked "$MP/ctl"; exit 1; }
rss1=$(rss "$FS_PID")
c0=$(ticks "$FS_PID"); a0=$(ticks "$AGENT")
sleep 10 # measuring idle CPU over a fixed window
c1=$(ticks "$FS_PID"); a1=$(ticks "$AGENT")
hz=$(getconf CLK_TCK)
printf 'streams: %d, parked readers: %d\n' "$N" "$N"
printf 'daemon RSS: %d KiB before, %d KiB after: %d bytes per stream+reader\n' \
    "$rss0" "$rss1" "$(((rss1 - rss0) * 1024 / N))"
printf 'idle CPU over 10 s: daemon %d ticks, agent %d ticks (%d Hz) = %s%% / %s%%\n' \
    $((c1 - c0)) $((a1 - a0)) "$hz" \
    "$(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.2f", t * 100 / (hz * 10) }')" \
    "$(awk -v t=$((a1 - a0)) -v hz="$hz" 'BEGIN { printf "%.2f", t * 100 / (hz * 10) }')"

# Wake-up latency: 21 samples, each on a different stream whose history is
# still empty (a new reader starts at byte 0), and through a FIFO.
for j in $(seq 21); do
    k=$((j * (N / 22)))
    D=$MP/streams/${ids[$((k - 1))]}/data
    "$PROBE" read "$D" >"$T/probe" &
    p=$!
    wait_for 5 eval 'grep -q "^parked: $((N + 1))$" "$MP/ctl"'
    t0=$(date +%s%N)
    echo "wake $j" >>"$T/f$k"
    wait $p
    read -r t1 _ <"$T/probe"
    echo $(((t1 - t0) / 1000)) >>"$T/lat"
done
mkfifo "$T/fifo"
for j in $(seq 21); do
    "$PROBE" read "$T/fifo" >"$T/probe" &
    p=$!
    exec 7>"$T/fifo" # opens once the reader has; then it is in read(2)
    sleep 0.05 # let the reader block in read(2): nothing to wait on here
    t0=$(date +%s%N)
    echo "wake" >&7
    wait $p
    exec 7>&-
    read -r t1 _ <"$T/probe"
    echo $(((t1 - t0) / 1000)) >>"$T/fifolat"
done
med() { sort -n "$1" | sed -n 11p; }
p90() { sort -n "$1" | sed -n 19p; }
printf 'wake-up latency, append to tailed file -> read returns: median %d us, p90 %d us\n' \
    "$(med "$T/lat")" "$(p90 "$T/lat")"
printf 'baseline, write to FIFO -> read returns:              median %d us, p90 %d us\n' \
    "$(med "$T/fifolat")" "$(p90 "$T/fifolat")"
