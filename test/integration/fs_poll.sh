#!/usr/bin/env bash
# fs_poll.sh - O_NONBLOCK gives EAGAIN; poll() and epoll wake on data
# (SPEC §4.1: .poll is implemented, so a FUSE file is not "always ready").
. "$(dirname "$0")/lib.sh"

start_fs
F=$T/app.log
: >"$F"
new_stream 3 "tail_file host $F" || exit 1
D=$MP/streams/$ID/data

check "O_NONBLOCK read with nothing there: EAGAIN" \
    eval '[ "$("$PROBE" nonblock "$D")" = EAGAIN ]'
check "poll with nothing there times out" \
    eval '[ "$("$PROBE" poll "$D" 300)" = timeout ]'

"$PROBE" poll "$D" 5000 >"$T/poll.out" &
P=$!
PIDS+=($P)
"$PROBE" epoll "$D" 5000 >"$T/epoll.out" &
E=$!
PIDS+=($E)
wait_for 2 eval 'grep -q "^readers: 2" "$MP/streams/$ID/info"'
# Both clients are asleep in poll (their FUSE_POLL came back "not ready").
wait_for 2 eval 'grep -q "^parked: 0" "$MP/ctl"'
sleep 0.3 # the wake-up latency is what is measured: give it a baseline
echo "wake up" >>"$F"
wait $P
wait $E
check "poll() woke on data and read it (got: $(cat "$T/poll.out"))" \
    eval 'set -- $(cat "$T/poll.out"); [ "$1" = ready -a "$2" -ge 250 -a "$2" -lt 1500 -a "$3" -eq 8 ]'
check "epoll woke on data and read it (got: $(cat "$T/epoll.out"))" \
    eval 'set -- $(cat "$T/epoll.out"); [ "$1" = ready -a "$2" -ge 250 -a "$2" -lt 1500 -a "$3" -eq 8 ]'
check "O_NONBLOCK read with data: the bytes" \
    eval '[ "$("$PROBE" nonblock "$D")" = 8 ]'

# ctl is pollable too: readable once the reply is there.
ctl_cmd 3 "eof"
check "eof op: false while live" test "$STATUS" = ok -a "$PAYLOAD" = false
exec 3>&-
