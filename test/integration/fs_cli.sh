#!/usr/bin/env bash
# fs_cli.sh - contrib/provium, the shell CLI over the mount.
. "$(dirname "$0")/lib.sh"

CLI=${PROVIUM_SOURCE_DIR:?}/contrib/provium
start_fs
export PROVIUM_MOUNT=$MP
F="$T/with space.log"
echo "first" >"$F"

ID=$("$CLI" open host tail_file "$F" start=beginning site=x.test.lua:3)
check "open prints an id ($ID)" eval '[[ "$ID" =~ ^[0-9]+$ ]]'
check "ls shows it" eval '"$CLI" ls | grep -q "^$ID  *tail_file .*x.test.lua:3 *live"'
check "follow replays it" eval '[ "$(timeout 2 "$CLI" follow "$ID" | head -1)" = first ]'
check "info" eval '"$CLI" info "$ID" | grep -q "^keep: yes"'
check "open error is reported" eval '! "$CLI" open host tail_file /nonexistent 2>"$T/err"'
check "open error message" grep -q "No such file or directory" "$T/err"
check "close" "$CLI" close "$ID"
check "closed: gone from ls" eval '! "$CLI" ls | grep -q "^$ID "'
out=$("$CLI" run host -- sh -c 'echo out; echo err >&2; exit 5' 2>"$T/run.err")
rc=$?
check "run: stdout ($out)" test "$out" = out
check "run: stderr" grep -qx err "$T/run.err"
check "run: exit status 5 ($rc)" test $rc -eq 5
check "status" eval '"$CLI" status | grep -q "^vms: host"'
