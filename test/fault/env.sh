#!/usr/bin/env bash
# env.sh - processes on the host VM get a sane environment (issue 10
# item 11): the daemon's own, with defaults for PATH, HOME and LANG when
# it lacks them, overridden by exec's env=; and clear errors: a missing
# program is named, a missing cwd is not mistaken for one, and no error
# repeats the command's name.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib_fault.sh"

show='exec -- sh -c "printf %s \"$PATH|$HOME|$LANG|$FOO\""'
output_of() { # output_of FD COMMAND: exec, wait, print its stdout
    ctl_cmd "$1" "$2"
    [ "$STATUS" = ok ] || { echo "exec failed: $PAYLOAD"; return; }
    local p=$PAYLOAD
    ctl_cmd "$1" "wait $p 10s"
    cat "$MP/vms/host/procs/$p/stdout"
}

# --- the daemon's environment is inherited; defaults fill the gaps
start_fs_env -u HOME -u LANG -u LC_ALL FOO=from-daemon -- 
exec 3<>"$MP/vms/host/ctl"
got=$(output_of 3 "$show")
check "the daemon's PATH and variables are inherited ($got)" \
    test "$got" = "$PATH|/root|C.UTF-8|from-daemon"
got=$(output_of 3 "exec env=LANG=fr_FR.UTF-8 env=FOO=mine -- ${show#exec -- }")
check "env= overrides ($got)" test "$got" = "$PATH|/root|fr_FR.UTF-8|mine"

# --- errors name what is wrong, once
ctl_cmd 3 "exec -- no-such-program-provium"
check "a missing program is named ($PAYLOAD)" \
    eval '[ "$STATUS" = error ] && [[ "$PAYLOAD" == "exec: no-such-program-provium: command not found (PATH="* ]]'
ctl_cmd 3 "exec cwd=/no/such/dir -- true"
check "a missing cwd is named as such ($PAYLOAD)" \
    test "$PAYLOAD" = "exec: cwd /no/such/dir: No such file or directory"
ctl_cmd 3 "kill 999 TERM"
check "kill of an unknown process: no doubled prefix ($PAYLOAD)" \
    test "$PAYLOAD" = "kill: proc#999: No such process"
ctl_cmd 3 "read 999 10"
check "read of an unknown handle: no doubled prefix ($PAYLOAD)" \
    test "$PAYLOAD" = "read: file#999: Bad file descriptor"
ctl_cmd 3 "open /no/such/file"
check "open of a missing file: no doubled prefix ($PAYLOAD)" \
    test "$PAYLOAD" = "open: /no/such/file: No such file or directory"
exec 3>&-
ID=$(cat "$MP/clone")
exec 4<>"$MP/streams/$ID/ctl"
ctl_cmd 4 "tail_file host /no/such/file"
check "tail_file of a missing file: named once ($PAYLOAD)" \
    test "$PAYLOAD" = "tail_file /no/such/file: No such file or directory"
ctl_cmd 4 "proc_stdout_stream host 999"
check "a stream of an unknown process: named once ($PAYLOAD)" \
    test "$PAYLOAD" = "proc_stdout_stream: proc#999: No such process"
exec 4>&-
stop_fs

# --- a daemon started with no PATH at all: the agent's default
start_fs_env -u PATH -u HOME -- 
exec 3<>"$MP/vms/host/ctl"
got=$(output_of 3 "$show")
check "no PATH: the documented default ($got)" \
    test "$got" = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root|C.UTF-8|"
exec 3>&-
