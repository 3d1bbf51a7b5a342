#!/usr/bin/env bash
# fs_ls.sh [N] - issue 12 (e): `ls -l streams/` with N streams (default
# 5000) beside `ls -l` of a plain directory of N subdirectories on the
# file system of $TMPDIR, alternating, RUNS (5) runs each; the first
# listing of the mount (nothing cached by the kernel yet) on its own line.
# Streams are tail_file opens with `keep`, spread over the host VM and a
# second VM whose agent listens on a Unix socket (an agent serves at most
# 4096 channels).
#   PROVIUM_BUILD_DIR=build test/bench/fs_ls.sh [N]
. "$(dirname "$0")/../integration/lib.sh"

N=${1:-5000}
RUNS=${RUNS:-5}
median() { sort -n | sed -n "$(((RUNS + 1) / 2))p"; }
lscpu | sed -n 's/^Model name: *//p' | sed 's/^/cpu: /'
echo "nproc: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"

"$AGENT_BIN" --listen "unix:$T/b.sock" --spool-dir "$T" 2>"$T/b.err" &
PIDS+=($!)
need "the second agent listens" wait_for 5 test -S "$T/b.sock"
start_fs --vm "b=unix:$T/b.sock"
: >"$T/f.host"
: >"$T/f.b"
t0=$(now_ms)
for i in $(seq "$N"); do
    vm=host
    [ $((i % 2)) -eq 0 ] && vm=b
    read -r id <"$MP/clone" || { fail "clone"; exit 1; }
    echo "tail_file $vm $T/f.$vm keep" >"$MP/streams/$id/ctl" ||
        { fail "open $id"; exit 1; }
done
wait_for 120 eval 'grep -q "^streams: $N$" "$MP/ctl"' ||
    { fail "streams did not open"; grep streams "$MP/ctl"; exit 1; }
log "$N streams in $(($(now_ms) - t0)) ms"
mkdir "$T/plain"
(cd "$T/plain" && seq "$N" | xargs mkdir)

t0=$(now_ms)
n=$(ls -l "$MP/streams" | grep -c '^d')
t1=$(now_ms)
[ "$n" -eq "$N" ] || fail "ls -l lists $n streams, not $N"
printf 'first ls -l of streams/ (nothing cached yet): %d ms\n' $((t1 - t0))
ls -l "$T/plain" >/dev/null
: >"$T/ls.fuse"
: >"$T/ls.plain"
for run in $(seq "$RUNS"); do
    t0=$(now_ms); ls -l "$MP/streams" >/dev/null; t1=$(now_ms)
    echo $((t1 - t0)) >>"$T/ls.fuse"
    t0=$(now_ms); ls -l "$T/plain" >/dev/null; t1=$(now_ms)
    echo $((t1 - t0)) >>"$T/ls.plain"
done
f=$(median <"$T/ls.fuse")
p=$(median <"$T/ls.plain")
printf 'ls -l streams/ (%d streams): runs %s ms, median %d ms\n' "$N" \
    "$(tr '\n' ' ' <"$T/ls.fuse")" "$f"
printf 'ls -l plain dir (%d dirs):   runs %s ms, median %d ms\n' "$N" \
    "$(tr '\n' ' ' <"$T/ls.plain")" "$p"
printf 'ratio streams / plain: %s\n' \
    "$(awk -v f="$f" -v p="$p" 'BEGIN { printf "%.2f", f / (p ? p : 1) }')"
