#!/usr/bin/env bash
# fs_cli.sh - contrib/provium, the shell CLI over the mount. Every call
# is bounded: a CLI that never sees an end of file fails here with rc 124
# instead of hanging to the ctest timeout.
. "$(dirname "$0")/lib.sh"

CLI=${PROVIUM_SOURCE_DIR:?}/contrib/provium
cli() { timeout 20 "$CLI" "$@"; }
start_fs
export PROVIUM_MOUNT=$MP
F="$T/with space.log"
echo "first" >"$F"

ID=$(cli open host tail_file "$F" start=beginning site=x.test.lua:3)
check "open prints an id ($ID)" eval '[[ "$ID" =~ ^[0-9]+$ ]]'
check "ls shows it" eval 'cli ls | grep -q "^$ID  *tail_file .*x.test.lua:3 *live"'
check "follow replays it" eval '[ "$(timeout 2 "$CLI" follow "$ID" | head -1)" = first ]'
check "info" eval 'cli info "$ID" | grep -q "^keep: yes"'
check "open error is reported" eval '! cli open host tail_file /nonexistent 2>"$T/err"'
check "open error message" grep -q "No such file or directory" "$T/err"

# follow ends with the stream: end of file, exit 0, every byte.
rm -f "$F"
cli follow "$ID" >"$T/follow.out"
check "follow of an ended stream exits 0 at its end (rc $?)" test $? -eq 0
check "follow printed every byte" eval '[ "$(cat "$T/follow.out")" = first ]'

check "close" cli close "$ID"
check "closed: gone from ls" eval '! cli ls | grep -q "^$ID "'
out=$(cli run host -- sh -c 'echo out; echo err >&2; exit 5' 2>"$T/run.err")
rc=$?
check "run: stdout ($out)" test "$out" = out
check "run: stderr" grep -qx err "$T/run.err"
check "run: exit status 5 ($rc)" test $rc -eq 5
cli run host -- sh -c 'kill -TERM $$' >/dev/null 2>&1
check "run: killed by a signal: 128 + 15 ($?)" test $? -eq 143
seq 1 20000 >"$T/seq.expected"
cli run host -- seq 1 20000 >"$T/seq.out"
check "run: exit 0 after all of its output ($?)" test $? -eq 0
check "run: every byte of its output" cmp "$T/seq.out" "$T/seq.expected"
check "status" eval 'cli status | grep -q "^vms: host"'

# read_until / expect / peek on a stream opened with `provium open`.
G=$T/prompt.log
printf 'boot\nREADY 8080 ok\nlog[ 1.5] x\r\nin: ' >"$G"
ID=$(cli open host tail_file "$G" start=beginning)
out=$(cli peek "$ID" -re 'READY [0-9]+ ok')
check "peek prints the bytes up to the match ($out)" \
    test "$out" = $'boot\nREADY 8080 ok'
i=$(cli expect "$ID" -t 1s -ex FAIL -re '[0-9]+ ok')
check "expect prints the alternative that matched ($i)" test "$i" = 2
out=$(cli read_until "$ID" --skip printk login:)
check "read_until with --skip printk ($out)" test "$out" = $'\nlog[ 1.5] x\r\nin:'
cli expect "$ID" -t 200ms never 2>"$T/err"
check "a timeout exits 1 ($?)" test $? -eq 1
check "with the message ($(cat "$T/err"))" \
    grep -q '^provium: expect timed out waiting for `never`; timeout 200ms' "$T/err"
cli expect "$ID" -re 'a(' 2>"$T/err"
check "a bad regex exits 1 ($?)" test $? -eq 1
check "with the daemon's message ($(cat "$T/err"))" grep -qF \
    'provium: expect: regex `a(`: missing closing parenthesis at offset 2' "$T/err"
check "the stream stays open after the CLI's ops" \
    eval 'cli info "$ID" | grep -q "^state: live"'
cli close "$ID"
