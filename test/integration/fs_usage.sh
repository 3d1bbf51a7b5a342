#!/usr/bin/env bash
# fs_usage.sh - every ctl file's command table (issue 11): a command with
# the wrong number of arguments fails its write with EINVAL and its reply
# names the command and prints that command's own usage line; an unknown
# command lists the table's names. One line per entry of each table:
# vms/<name>/ctl (fs/vmctl.c), the top-level ctl (fs/global.c), the open
# commands (streams/engine.c) and the stream ops (streams/stream.c).
. "$(dirname "$0")/lib.sh"

start_fs

# bad FD COMMAND EXPECTED-PAYLOAD: the write fails EINVAL, the reply is
# `error` with exactly EXPECTED-PAYLOAD.
bad() {
    local fd=$1 cmd=$2 want=$3
    check "\`$cmd\`: the write fails with EINVAL" \
        eval '! printf "%s\n" "$cmd" 2>"$T/w.err" >&'"$fd"' && grep -q "Invalid argument" "$T/w.err"'
    ctl_reply "$fd"
    check "\`$cmd\`: $PAYLOAD" test "$STATUS $PAYLOAD" = "error $want"
}

# --- vms/<name>/ctl
exec 3<>"$MP/vms/host/ctl"
missing() { bad 3 "$1" "$1: missing argument (usage: $2)"; }
toomany() { bad 3 "$1" "${1%% *}: too many arguments (usage: $2)"; }
missing exec "exec [cwd=DIR] [env=K=V]... -- ARGV..."
missing wait "wait PROC [T]"
toomany "wait 1 2s 3" "wait PROC [T]"
missing kill "kill PROC [SIG]"
toomany "kill 1 TERM x" "kill PROC [SIG]"
missing stdin "stdin PROC DATA"
toomany "stdin 1 a b" "stdin PROC DATA"
missing stdin_close "stdin_close PROC"
toomany "stdin_close 1 2" "stdin_close PROC"
missing open "open PATH [read] [write] [create] [append] [truncate]"
missing read "read H N"
toomany "read 1 2 3" "read H N"
missing write "write H DATA"
toomany "write 1 a b" "write H DATA"
missing seek "seek H OFF [set|cur|end]"
toomany "seek 1 0 set x" "seek H OFF [set|cur|end]"
missing close "close H"
toomany "close 1 2" "close H"
missing console_write "console_write DATA"
toomany "console_write a b" "console_write DATA"
toomany "quiesce now" "quiesce"
bad 3 "kill banana" "kill: bad process id \`banana\` (usage: kill PROC [SIG])"
bad 3 "frob" "unknown VM command \`frob\` (expected exec, wait, kill, stdin, stdin_close, open, read, write, seek, close, console_write or quiesce)"
exec 3>&-

# --- the top-level ctl
exec 4<>"$MP/ctl"
usage_add="vm add NAME agent=ENDPOINT [console=SOCKETPATH] [nic=IFACE]... [users=UID,...]"
bad 4 "vm add" "vm add: missing argument (usage: $usage_add)"
bad 4 "vm del" "vm del: missing argument (usage: vm del NAME)"
bad 4 "vm del a b" "vm del: too many arguments (usage: vm del NAME)"
bad 4 "vm frob" "usage: $usage_add | vm del NAME"
exec 4>&-

# --- streams/<id>/ctl: the open commands, then the stream ops
ID=$(cat "$MP/clone")
exec 5<>"$MP/streams/$ID/ctl"
bad 5 "tail_file host" "tail_file: missing argument (usage: tail_file VM PATH [start=end|beginning|start|N|-N] [follow=name|descriptor])"
bad 5 "fd_stream host keep" "fd_stream: missing argument (usage: fd_stream VM HANDLE)"
bad 5 "proc_stdout_stream" "proc_stdout_stream: missing argument (usage: proc_stdout_stream VM PROC)"
bad 5 "console" "console: missing argument (usage: console VM [start=beginning|end])"
bad 5 "capture" "capture: missing argument (usage: capture IFACE [kind=bridge|nic] [snaplen=N] [filter=BPF])"
: >"$T/f.log"
ctl_cmd 5 "tail_file host $T/f.log"
check "the slot opens after its bad commands ($STATUS)" test "$STATUS" = ok
bad 5 "read_until" "read_until: missing pattern (usage: read_until P [T] [skip=printk], or read_until {-ex P|-re[/imsx] P}... [T] [skip=printk])"
bad 5 "expect x 1s 2" "expect: too many arguments (usage: expect P [T] [skip=printk], or expect {-ex P|-re[/imsx] P}... [T] [skip=printk])"
bad 5 "peek" "peek: missing pattern (usage: peek P [T] [skip=printk], or peek {-ex P|-re[/imsx] P}... [T] [skip=printk])"
bad 5 'expect -re "ab("' "expect: regex \`ab(\`: missing closing parenthesis at offset 3"
bad 5 'expect -ex a -re "(a)\\1"' "expect: pattern 2: regex \`(a)\\\\1\`: back-reference at offset 3 cannot be matched in a stream (Hyperscan: Back-references are unsupported.)"
bad 5 "next 1 2" "next: too many arguments (usage: next [T])"
bad 5 "drain 1 2" "drain: too many arguments (usage: drain [T])"
bad 5 "eof 1" "eof: too many arguments (usage: eof)"
bad 5 "close 1" "close: too many arguments (usage: close)"
exec 5>&-
