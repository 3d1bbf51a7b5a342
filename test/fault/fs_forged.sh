#!/usr/bin/env bash
# fs_forged.sh - text from guests and users cannot forge lines: a hostile
# guest's hello (a kernel string with an escape sequence and newlines), a
# site= or test= with a newline, an argv word with one are shown escaped
# (\xHH) in info, vms/*/streams, site, cmdline and the quiesce text
# (SPEC §6.4; issue 10 item 10). And an agent message that already names
# its request gets no second prefix (item 11).
. "$(dirname "$0")/lib_fs.sh"

start_fs
exec 5<>"$MP/ctl"

# --- a hostile guest's facts
start_fake_agent "$T/fake.sock" "$(printf '\033[31m\n\nagent_state: up')"
ctl_cmd 5 "vm add f agent=unix:$T/fake.sock"
check "vm add of the hostile guest: ok" test "$STATUS" = ok
check "its facts arrive" wait_for 5 grep -q "^agent_kernel:" "$MP/vms/f/info"
check "one agent_state line in info ($(grep -c '^agent_state:' "$MP/vms/f/info"))" \
    test "$(grep -c '^agent_state:' "$MP/vms/f/info")" = 1
check "the kernel string is one escaped line" \
    grep -qxF 'agent_kernel: \x1b[31m\x0a\x0aagent_state: up' "$MP/vms/f/info"
check "no escape character reaches the file" \
    eval '! grep -q "$(printf "\033")" "$MP/vms/f/info"'
exec 6<>"$MP/vms/f/ctl"
ctl_cmd 6 "exec -- true"
check "an agent's own \"exec: \" prefix is not doubled ($PAYLOAD)" \
    test "$STATUS $PAYLOAD" = "error exec: too many processes (max 1024)"
ctl_cmd 6 "kill 1"
check "the daemon's messages keep theirs ($PAYLOAD)" \
    test "$PAYLOAD" = "kill: proc#1: No such process"
exec 6>&-

# --- a user's site= and test= with newlines
: >"$T/f.log"
new_stream 7 "tail_file host $T/f.log \"site=a.lua:1\\nstate: ended\" \"test=t\\n  - forged(x)\"" ||
    exit 1
I=$MP/streams/$ID/info
check "one state line in the stream's info, live" \
    test "$(grep '^state:' "$I")" = "state: live"
check "the site is one escaped line" grep -qxF 'site: a.lua:1\x0astate: ended' "$I"
check "the test is one escaped line" grep -qxF 'test: t\x0a  - forged(x)' "$I"
check "streams/ID/site is one line" \
    test "$(cat "$MP/streams/$ID/site")" = 'a.lua:1\x0astate: ended'
check "vms/host/streams has one line per stream ($(wc -l <"$MP/vms/host/streams"))" \
    test "$(wc -l <"$MP/vms/host/streams")" = 1
exec 3<>"$MP/vms/host/ctl"
ctl_cmd 3 quiesce
expected="vm:snapshot() failed for \`host\`: 0 open file handle(s), 1 open stream(s)
  - tail_file(\"$T/f.log\") created at a.lua:1\\x0astate: ended (test \"t\\x0a  - forged(x)\")
  Close streams before snapshotting."
check "the quiesce text has one line per stream" test "$PAYLOAD" = "$expected"
exec 7>&-

# --- an argv word with a newline and a backslash
ctl_cmd 3 'exec -- echo "a\nb\\c"'
P=$PAYLOAD
check "procs/N/cmdline is one escaped line" \
    test "$(cat "$MP/vms/host/procs/$P/cmdline")" = 'echo a\x0ab\x5cc'
check "the process got the bytes as written" \
    wait_for 5 eval '[ "$(cat "$MP/vms/host/procs/$P/stdout")" = "$(printf "a\nb\\\\c")" ]'
exec 3>&- 5>&-
