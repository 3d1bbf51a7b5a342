#!/usr/bin/env bash
# harness.sh - the test machinery itself (docs/testing.md): a test killed
# with SIGKILL, as ctest kills one at its timeout, leaves a mount, a
# daemon, blocked readers and a network namespace behind, and the sweep
# removes them all; skips exit 77, and fail under PROVIUM_REQUIRE_ALL=1,
# for shell tests and for Criterion programs alike; the helpers fail
# instead of passing when the daemon does not answer.
. "$(dirname "$0")/lib.sh"

SRC=${PROVIUM_SOURCE_DIR:?}
RUN=$T/run # a run directory of this test's own
mkdir -p "$RUN"

# --- a victim test: a mount, a blocked reader, a netns; then it hangs
cat >"$T/victim.sh" <<EOF
. "$SRC/test/integration/lib.sh"
start_fs
F=\$T/app.log
: >"\$F"
new_stream 3 "tail_file host \$F keep" || exit 1
cat "\$MP/streams/\$ID/data" >/dev/null 3>&- &
if [ "\$(id -u)" -eq 0 ]; then
    register netns "provium-victim-\$\$"
    ip netns add "provium-victim-\$\$"
fi
wait_for 5 grep -q "^readers: 1" "\$MP/streams/\$ID/info"
echo "\$\$ \$T \$MP" >"$T/victim.ready"
sleep 600
EOF
PROVIUM_RUN_DIR=$RUN bash "$T/victim.sh" 2>"$T/victim.err" &
VICTIM=$!
PIDS+=($VICTIM)
need "the victim test is up" wait_for 15 test -s "$T/victim.ready"
read -r vpid vT vMP <"$T/victim.ready"
check "the victim kept its pid (setsid without a fork)" test "$vpid" = "$VICTIM"
proc_stat "$VICTIM"
check "the victim leads a session of its own" test "${STAT[3]}" = "$VICTIM"
check "the victim registered itself" test -f "$RUN/victim.$VICTIM.reg"

kill -KILL "$VICTIM"
wait "$VICTIM" 2>/dev/null
sweep_members session "$VICTIM"
check "killed: its processes live on (${#MEMBERS[@]}: daemon, agent, reader, sleep)" \
    test ${#MEMBERS[@]} -ge 4
check "killed: its mount is still there" sweep_mounted "$vMP"
[ "$(id -u)" -eq 0 ] &&
    check "killed: its netns is still there" test -e "/run/netns/provium-victim-$VICTIM"

bash "$SRC/test/sweep.sh" "$RUN" --strict 2>"$T/sweep.err"
rc=$?
check "sweep --strict: exit 1, leftovers were found ($(tr '\n' ' ' <"$T/sweep.err"))" \
    test $rc -eq 1
sweep_members session "$VICTIM"
check "swept: no process of its session is left (${MEMBERS[*]})" \
    test ${#MEMBERS[@]} -eq 0
check "swept: its mount is gone" eval '! sweep_mounted "$vMP"'
check "swept: its scratch directory is gone" test ! -e "$vT"
check "swept: its netns is gone" test ! -e "/run/netns/provium-victim-$VICTIM"
check "swept: its registration is gone" test ! -e "$RUN/victim.$VICTIM.reg"
bash "$SRC/test/sweep.sh" "$RUN" --strict 2>/dev/null
check "a second sweep finds nothing (exit $?)" test $? -eq 0

# --- honest skips of a shell test
cat >"$T/skipper.sh" <<EOF
. "$SRC/test/integration/lib.sh"
skip "a prerequisite is missing"
EOF
PROVIUM_RUN_DIR=$RUN PROVIUM_REQUIRE_ALL=0 bash "$T/skipper.sh" 2>/dev/null
check "skip: exit 77 ($?)" test $? -eq 77
PROVIUM_RUN_DIR=$RUN PROVIUM_REQUIRE_ALL=1 bash "$T/skipper.sh" 2>/dev/null
check "skip under PROVIUM_REQUIRE_ALL=1: a failure ($?)" test $? -eq 1

# --- honest skips of a Criterion program (criterion.sh reads its TAP)
fake_criterion() { # fake_criterion NAME EXIT TAP-LINE
    cat >"$T/$1" <<EOF
#!/bin/sh
for a in "\$@"; do case \$a in --tap=*) printf '%s\n' "$3" >"\${a#--tap=}" ;; esac; done
exit $2
EOF
    chmod +x "$T/$1"
}
fake_criterion skips 0 "ok - suite::test  # SKIP needs root"
fake_criterion passes 0 "ok - suite::test"
fake_criterion fails 1 "not ok - suite::test"
fake_criterion noqemu 77 ""
crit() { PROVIUM_RUN_DIR=$RUN bash "$SRC/test/criterion.sh" "$@" 2>/dev/null; }
PROVIUM_REQUIRE_ALL=0 crit "$T/skips"
check "Criterion skip: exit 77 ($?)" test $? -eq 77
PROVIUM_REQUIRE_ALL=1 crit "$T/skips"
check "Criterion skip under PROVIUM_REQUIRE_ALL=1: a failure ($?)" test $? -eq 1
PROVIUM_REQUIRE_ALL=1 crit "$T/passes"
check "Criterion pass: exit 0 ($?)" test $? -eq 0
PROVIUM_REQUIRE_ALL=0 crit "$T/fails"
check "Criterion failure: exit 1 ($?)" test $? -eq 1
PROVIUM_REQUIRE_ALL=0 crit "$T/noqemu"
check "a program's own 77: skipped ($?)" test $? -eq 77
PROVIUM_REQUIRE_ALL=1 crit "$T/noqemu"
check "a program's own 77 under PROVIUM_REQUIRE_ALL=1: a failure ($?)" \
    test $? -eq 1

# --- the helpers fail, rather than pass, when no reply comes
start_fs
: >"$T/quiet.log"
new_stream 4 "tail_file host $T/quiet.log" || exit 1
printf 'expect "never" 60s\n' >&4
before=$FAILS
CTL_TIMEOUT=1 ctl_reply 4 2>/dev/null
rc=$?
check "ctl_reply with no reply in time: returns 1 ($rc), records a failure" \
    test $rc -eq 1 -a $FAILS -eq $((before + 1))
read_eof 4 2>/dev/null
rc=$?
check "read_eof with no answer: returns 1 ($rc), records a failure" \
    test $rc -eq 1 -a $FAILS -eq $((before + 2))
FAILS=$before # those two were expected
# read_eof must not take a newline for the end of file
exec 5<>"$MP/ctl"
printf 'vm del nosuch\n' >&5
read_line 5 5 # "error N"
head -c "${LINE##* }" <&5 >/dev/null
printf 'vm del nosuch\n' >&5
before=$FAILS
read_eof 5 2>/dev/null
rc=$?
check "read_eof on a byte (not the end of file): returns 1 ($rc)" \
    test $rc -eq 1 -a $FAILS -eq $((before + 1))
FAILS=$before
exec 4>&- 5>&-
