#!/usr/bin/env bash
# fs_idle.sh [N] - issue 4 benchmark (b): N streams (default 1000), each
# with a `cat data` reader parked on it: the daemon's RSS per stream, its
# CPU (and its agent's) while idle for 10 s, and the wake-up latency of one
# parked reader when its tailed file grows (append → read(2) returns),
# beside the same wake-up through a FIFO as the floor (fs_probe wake: one
# program, one clock).
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
    disown # killed at exit without a job notice
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

# Wake-up latency (issue 12 (c)): one more stream, with no other reader,
# tailing its own file; fs_probe's wake mode measures, in one program with
# one clock (CLOCK_MONOTONIC), a thread parked in read(2) of its `data`
# woken by a 16-byte append, and a thread blocked in read(2) of a FIFO
# woken by a 16-byte write, alternating, $WAKE_N samples of each.
WAKE_N=${WAKE_N:-500}
: >"$T/wake"
id=$(cat "$MP/clone")
echo "tail_file host $T/wake keep" >"$MP/streams/$id/ctl"
wait_for 10 eval 'grep -q "^streams: $((N + 1))$" "$MP/ctl"'
mkfifo "$T/fifo"
"$PROBE" wake "$MP/ctl" "$MP/streams/$id/data" "$T/wake" "$T/fifo" "$WAKE_N"
