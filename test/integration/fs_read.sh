#!/usr/bin/env bash
# fs_read.sh - the read path of issue 12 is byte-exact: replies spliced
# from the spool (capped below the pipe size), the copy fallback, the
# reply threads, the page cache of `log` and its invalidation as the
# history grows. fs_readcheck reads `data` and `log` with random sizes (1
# byte to 2 MiB) and random offsets while frames arrive and checks every
# byte against what was appended; then bad input: reads of 0 bytes, of
# more than a FUSE request, past the end, readers SIGKILLed in the middle
# of large replies.
. "$(dirname "$0")/lib.sh"

CHECK=$BUILD/test/fs_readcheck
SEED=${FS_READ_SEED:-$(date +%s)}
log "seed $SEED (FS_READ_SEED=$SEED to replay)"

# readcheck NAME MIB DATA_READERS LOG_READERS: one run on a new stream.
readcheck() {
    local name=$1 mib=$2 nd=$3 nl=$4 src
    src=$T/src.$name
    : >"$src"
    new_stream 3 "tail_file host $src start=beginning" || return 1
    timeout 120 "$CHECK" "$MP/streams/$ID" "$src" "$SEED" "$mib" "$nd" "$nl" \
        >"$T/check.$name" 2>&1
    local rc=$?
    cat "$T/check.$name" >&2
    check "$name: every reader got exactly the bytes appended" test $rc -eq 0
    check "$name: info counts them all" \
        grep -q "^bytes: $((mib << 20))$" "$MP/streams/$ID/info"
    exec 3>&-
}

# Spliced replies, two reply threads (the default).
start_fs --history-limit 0
check "replies are spliced, two reply threads" \
    grep -q "^replies: spliced, 2 reply thread(s)$" "$MP/ctl"
readcheck splice 48 4 3
stop_fs || fail "daemon exit"

# Spliced, every reply from the event loop itself.
start_fs --history-limit 0 --reply-threads 0
readcheck loop 32 3 2
stop_fs || fail "daemon exit"

# The copy fallback, forced (the same bytes either way).
export PROVIUM_NO_SPLICE=1
start_fs --history-limit 0 --reply-threads 3
unset PROVIUM_NO_SPLICE
check "PROVIUM_NO_SPLICE=1 makes replies copies" \
    grep -q "^replies: copied, 3 reply thread(s)$" "$MP/ctl"
readcheck fallback 32 3 2
stop_fs || fail "daemon exit"

# Many readers while a writer appends, with random sizes.
start_fs --history-limit 0
readcheck many 16 24 2

# ---- bad input ---------------------------------------------------------
F=$T/bad.src
head -c 3M /dev/urandom >"$F"
new_stream 3 "tail_file host $F start=beginning" || exit 1
S=$MP/streams/$ID
need "the history is in" \
    wait_for 10 eval '[ "$(stat -c %s "$S/log")" -eq $((3 << 20)) ]'
# reads FILE OFF SIZE...: the counts, one a line, on one line; the bytes
# in $T/got.
reads() { "$PROBE" reads "$@" 3>"$T/got" | tr '\n' ' '; }
check "a read of 0 bytes on data returns 0 and takes nothing" \
    eval '[ "$(reads "$S/data" -1 0 10)" = "0 10 " ] && cmp -s -n 10 "$T/got" "$F"'
check "a read of 0 bytes on log returns 0" \
    eval '[ "$(reads "$S/log" 5 0)" = "0 " ]'
# 8 MiB asked at once: the kernel splits it into FUSE requests of at most
# 1 MiB and stops at the first short one (ours are short of 1 MiB when
# spliced); the bytes come in order, whatever the count of each read.
check "reads of 8 MiB on data (more than a FUSE request) get the bytes" \
    eval 'n=$(reads "$S/data" -1 8388608 8388608 8388608 8388608) &&
          [ $(($(echo $n | tr " " +))) -eq $((3 << 20)) ] ||
          { log "counts: $n"; false; }; cmp -s "$T/got" "$F"'
# The splice cap (send.c): a spliced reply is at most 1 MiB - 16 KiB, or
# libfuse's pipe cannot hold it and every reply is copied for good.
check "a spliced reply to a 1 MiB read is 1 MiB - 16 KiB" \
    eval '[ "$(reads "$S/data" -1 1048576 1048576)" = "1032192 1032192 " ]'
check "a read of 8 MiB on log gets all of it" \
    eval '[ "$(reads "$S/log" 0 8388608)" = "$((3 << 20)) " ] && cmp -s "$T/got" "$F"'
check "reads at and past the end of log return 0" \
    eval '[ "$(reads "$S/log" $((3 << 20)) 1 4096 1048576)" = "0 0 0 " ] &&
          [ "$(reads "$S/log" $((1 << 40)) 4096)" = "0 " ]'
check "a read straddling the end of log returns what is there" \
    eval '[ "$(reads "$S/log" $(((3 << 20) - 1000)) 4096)" = "1000 " ] &&
          cmp -s "$T/got" <(tail -c 1000 "$F")'

# Readers SIGKILLed while their large replies are on the way: the daemon
# goes on, the other readers get their bytes, nobody stays in D state.
for i in $(seq 20); do
    (exec dd if="$S/data" of=/dev/null bs=4M status=none) &
    k=$!
    (exec dd if="$S/log" of=/dev/null bs=2M status=none) &
    l=$!
    sleep 0.0$((RANDOM % 10)) # a random moment of the reads: time itself
    kill -9 $k $l 2>/dev/null
    wait $k $l 2>/dev/null
done
check "the daemon survived readers killed mid-reply" kill -0 "$FS_PID"
check "no reader left in D state" no_d_state
check "a new reader still gets every byte" \
    eval 'timeout 10 head -c $((3 << 20)) "$S/data" | cmp -s - "$F"'
check "the log still reads whole" cmp -s "$S/log" "$F"
exec 3>&-
