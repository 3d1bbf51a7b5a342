#!/usr/bin/env bash
# fs_poll.sh - O_NONBLOCK gives EAGAIN; poll() and epoll wake on data
# (SPEC §4.1: .poll is implemented, so a FUSE file is not "always ready");
# the same for ctl (SPEC §4.3): readable only once the reply is there.
. "$(dirname "$0")/lib.sh"

# Is PID asleep in poll/epoll, its FUSE_POLL answered "not ready"?
# /proc/PID/syscall: the system call it is blocked in (poll 7, ppoll 271,
# epoll_wait 232, epoll_pwait 281, epoll_pwait2 441 on x86-64), and
# /proc/PID/wchan where: the poll wait itself, not a FUSE request.
in_poll() {
    local nr wchan
    read -r nr _ <"/proc/$1/syscall" 2>/dev/null || return 1
    case $nr in 7 | 271 | 232 | 281 | 441) ;; *) return 1 ;; esac
    { read -r wchan <"/proc/$1/wchan"; } 2>/dev/null # no newline: rc 1
    [[ "$wchan" == poll_schedule_timeout* || "$wchan" == ep_poll* ||
        "$wchan" == do_epoll_wait* ]]
}

# woke_after OUTPUT T_NS: poll said ready after T_NS (when the test wrote)
# and within a second of it, and read BYTES.
woke() { # woke FILE T_NS BYTES
    local r ms n ns
    read -r r ms n ns <"$1" || return 1
    [ "$r" = ready ] && [ "$n" -eq "$3" ] && [ "$ns" -ge "$2" ] &&
        [ $(((ns - $2) / 1000000)) -lt 1000 ]
}

start_fs
F=$T/app.log
: >"$F"
new_stream 3 "tail_file host $F" || exit 1
D=$MP/streams/$ID/data
C=$MP/streams/$ID/ctl

# --- data
check "O_NONBLOCK read with nothing there: EAGAIN" \
    eval '[ "$("$PROBE" nonblock "$D")" = EAGAIN ]'
check "poll with nothing there times out" \
    eval '[ "$("$PROBE" poll "$D" 300)" = timeout ]'

"$PROBE" poll "$D" 5000 >"$T/poll.out" 3>&- &
P=$!
PIDS+=($P)
"$PROBE" epoll "$D" 5000 >"$T/epoll.out" 3>&- &
E=$!
PIDS+=($E)
# Both clients are asleep in poll: their FUSE_POLL came back "not ready".
need "poll() client asleep in poll" wait_for 3 in_poll $P
need "epoll client asleep in epoll_wait" wait_for 3 in_poll $E
t_ns=$(date +%s%N)
echo "wake up" >>"$F"
reap $P 15
reap $E 15
check "poll() woke on data within 1 s and read it (got: $(cat "$T/poll.out"))" \
    woke "$T/poll.out" "$t_ns" 8
check "epoll woke on data within 1 s and read it (got: $(cat "$T/epoll.out"))" \
    woke "$T/epoll.out" "$t_ns" 8
check "O_NONBLOCK read with data: the bytes" \
    eval '[ "$("$PROBE" nonblock "$D")" = 8 ]'

# --- ctl: not readable while the command runs, readable once its reply
# is there; O_NONBLOCK gives EAGAIN meanwhile.
check "ctl, nothing outstanding: readable at once (the state line)" \
    eval '[ "$("$PROBE" poll "$C" 300 | cut -d" " -f1)" = ready ]'
out=$("$PROBE" poll "$C" 300 'expect "never" 2s')
check "ctl poll while a command runs: not ready ($out)" test "$out" = timeout
out=$("$PROBE" epoll "$C" 300 'expect "never" 2s')
check "ctl epoll while a command runs: not ready ($out)" test "$out" = timeout
out=$("$PROBE" nonblock "$C" 'expect "never" 2s')
check "ctl O_NONBLOCK read while a command runs: EAGAIN ($out)" \
    test "$out" = EAGAIN

# Ops run in the order written, whichever open wrote them: the epoll
# client's `next` waits behind the poll client's `expect`, and then
# returns the byte the match left pending.
"$PROBE" poll "$C" 5000 'expect "ready" 10s' >"$T/cpoll.out" 3>&- &
P=$!
PIDS+=($P)
need "ctl poll() client asleep in poll" wait_for 3 in_poll $P
"$PROBE" epoll "$C" 5000 'next 10s' >"$T/cepoll.out" 3>&- &
E=$!
PIDS+=($E)
need "ctl epoll client asleep in epoll_wait" wait_for 3 in_poll $E
t_ns=$(date +%s%N)
echo "ready" >>"$F"
reap $P 15
reap $E 15
check "ctl poll() woke when its reply was there: ok 0 (got: $(cat "$T/cpoll.out"))" \
    woke "$T/cpoll.out" "$t_ns" 5
check "ctl epoll woke when its reply was there: ok 1 + newline (got: $(cat "$T/cepoll.out"))" \
    woke "$T/cepoll.out" "$t_ns" 6

ctl_cmd 3 "eof"
check "eof op: false while live" test "$STATUS" = ok -a "$PAYLOAD" = false
exec 3>&-
