#!/usr/bin/env bash
# fs_match.sh - matching through the mount (SPEC §9, docs/matching.md):
# the marked forms' replies read with plain `read`, peek, skip=printk, bad
# patterns refused at the write with their message, and timeout messages
# that explain themselves, word for word.
. "$(dirname "$0")/lib.sh"

start_fs
F=$T/console.log
REC=$'[    3.141592] random: crng init done\r\n'
: >"$F"
new_stream 3 "tail_file host $F" || exit 1

# --- a near miss: Provium's words, then what was seen
printf 'Debian GNU/Linux 12\r\nlogi%s' "$REC" >>"$F"
wait_for 5 grep -q '^bytes: 64$' "$MP/streams/$ID/info"
ctl_cmd 3 'read_until login: 200ms'
check "near miss: timeout ($STATUS)" test "$STATUS" = timeout
check "near miss, word for word: $PAYLOAD" test "$PAYLOAD" = \
    'read_until timed out waiting for `login:`; timeout 200ms; last bytes seen: `Debian GNU/Linux 12\r\nlogi[    3.141592] random: crng init done\r\n`; 64 bytes scanned; closest: `logi` then `[    3.141592] random: crng init done\r\n`'
ctl_cmd 3 'expect -ex login: -re/i "password: *$" -ex "# " 0 skip=printk'
check "a list, word for word: $PAYLOAD" test "$PAYLOAD" = \
    'expect timed out waiting for one of `login:`, regex `password: *$` (flags i), `# `; timeout 0s; last bytes seen: `Debian GNU/Linux 12\r\nlogi[    3.141592] random: crng init done\r\n`; 64 bytes scanned; kernel log records skipped: 1; closest: `logi` of `login:` at the end'

# --- the prompt completes: skip=printk sees `login:`, the record consumed
printf 'n: ' >>"$F"
ctl_cmd 3 'peek -re "login: *$" 5s skip=printk'
check "peek: ok ($STATUS $FIELDS)" test "$STATUS" = ok -a "$FIELDS" = "1 21 67"
check "peek returns what read_until would" test "$PAYLOAD_RAW" = \
    $'Debian GNU/Linux 12\r\nlogi'"$REC"'n: '
ctl_cmd 3 'expect -ex "Password:" -re "login: *$" 5s skip=printk'
check "expect: the alternative and span ($FIELDS)" test "$FIELDS" = "2 21 67"
check "expect: the payload is the match, raw" test "$PAYLOAD_RAW" = \
    "logi${REC}n: "
check "everything consumed" grep -q '^consumed: 67$' "$MP/streams/$ID/info"

# --- a shell script branches on the alternative, with plain read
printf 'status: READY 8080 ok\nmore\n' >>"$F"
printf '%s\n' 'read_until -ex FAILED -re "READY ([0-9]+) ok" 5s' >&3
read -r st len alt from to g1 g2 <&3
out=$(head -c "$len" <&3)
check "read with plain read: $st $len $alt $from $to $g1 $g2" \
    test "$st $len $alt $from $to $g1 $g2" = "ok 21 2 8 21 14 18"
check "the group's bytes" test "${out:$g1:$((g2 - g1))}" = 8080
read_eof 3
ctl_cmd 3 'read_until e 1s'
check "the rest is pending ($STATUS)" test "$PAYLOAD_RAW" = $'\nmore'

# --- bad patterns: the write fails (EINVAL), the reply says why
bad() {
    local cmd=$1 want=$2
    check "\`$cmd\`: the write fails with EINVAL" \
        eval '! printf "%s\n" "$cmd" 2>"$T/w.err" >&3 && grep -q "Invalid argument" "$T/w.err"'
    ctl_reply 3
    check "\`$cmd\`: $PAYLOAD" test "$STATUS $PAYLOAD" = "error $want"
}
bad 'expect -re "ab(c"' 'expect: regex `ab(c`: missing closing parenthesis at offset 4'
bad 'expect -re "(?<!x)y"' 'expect: regex `(?<!x)y`: lookbehind assertion at offset 0 cannot be matched in a stream (Hyperscan: Zero-width assertions are not supported.)'
bad 'peek -re/z x' 'peek: unknown regex flag `z` (expected i, m, s or x)'
bad 'expect x 1s skip=dmesg' 'expect: skip=dmesg: expected printk or none'
# Today's commands keep their meaning: `-re` alone is a literal.
printf 'x -re y\n' >>"$F"
ctl_cmd 3 'read_until -re 5s'
check "\`read_until -re 5s\` is the literal -re ($STATUS)" \
    test "$STATUS" = ok -a "$PAYLOAD_RAW" = $'\nx -re' -a -z "$FIELDS"
exec 3>&-
