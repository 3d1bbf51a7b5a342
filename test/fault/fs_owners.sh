#!/usr/bin/env bash
# fs_owners.sh - SPEC §8 on a shared mount (-o allow_other): every VM,
# process and file handle has an owner, and only its owners (and root)
# use it (issue 10 item 8). Runs as two users the test creates (useradd)
# and nobody, through runuser.
. "$(dirname "$0")/lib_fs.sh"

[ "$(id -u)" -eq 0 ] || { log "FAIL: needs root (useradd, runuser)"; exit 1; }
make_user U
UU=$(id -u "$U")
start_fs -o allow_other
exec 5<>"$MP/ctl"

# --- a VM root added: root's processes, handles and streams on it
start_agent "$T/g.sock"
vm_add 5 g "agent=unix:$T/g.sock" || exit 1
exec 6<>"$MP/vms/g/ctl"
ctl_cmd 6 'exec -- sh -c "echo root-secret"'
RP=$PAYLOAD
ctl_cmd 6 "open /etc/shadow read"
RH=$PAYLOAD
check "root runs a process and opens /etc/shadow on g ($RP, $RH)" \
    eval '[[ "$RP" =~ ^[0-9]+$ && "$RH" =~ ^[0-9]+$ ]]'
: >"$T/root.log"
new_stream 7 "tail_file g $T/root.log site=secret.test.lua:7 test=rootsecret" || exit 1

out=$(as_open "$U" "proc_stdout_stream g $RP")
check "a user cannot stream root's process output ($out)" \
    eval '[[ "$out" == "error: vm \`g\`: Operation not permitted (vm \`g\` belongs to uid 0"* ]]'
out=$(as_open "$U" "fd_stream g $RH")
check "nor root's handle ($out)" \
    eval '[[ "$out" == "error: vm \`g\`: Operation not permitted"* ]]'
out=$(as_open "$U" "tail_file g /etc/shadow")
check "nor tail a file on root's VM ($out)" \
    eval '[[ "$out" == "error: vm \`g\`: Operation not permitted"* ]]'
out=$(as "$U" "cat $MP/vms/g/procs/$RP/stdout")
check "nor read procs/N/stdout ($out)" eval '[[ "$out" == *"Permission denied"* ]]'
out=$(as_vmctl "$U" g "exec -- id")
check "nor use the VM's ctl ($out)" eval '[[ "$out" == *"Permission denied"* ]]'
out=$(as "$U" "cat $MP/vms/g/streams")
check "vms/g/streams hides root's path, site and test from a user ($out)" \
    eval '[ "$out" = "tail_file(<hidden>) of uid 0" ]'
out=$(cat "$MP/vms/g/streams")
check "root sees them ($out)" \
    test "$out" = "tail_file(\"$T/root.log\") created at secret.test.lua:7 (test \"rootsecret\")"
check "a user cannot add VMs" \
    eval '[[ "$(as "$U" "echo vm add x agent=unix:/x > $MP/ctl")" == *"Permission denied"* ]]'

# --- a VM root added for the user (users=): theirs, but not root's objects
start_agent "$T/g2.sock"
vm_add 5 g2 "agent=unix:$T/g2.sock" "users=$UU" || exit 1
check "g2's ctl belongs to the user, 0600" \
    test "$(stat -c '%u %a' "$MP/vms/g2/ctl")" = "$UU 600"
check "g2's info names its users" grep -q "^users: $UU\$" "$MP/vms/g2/info"
out=$(as_vmctl "$U" g2 'exec -- sh -c "echo user-out"')
UP=${out#ok: }
check "the user execs on g2 ($out)" eval '[[ "$out" =~ ^ok:\ [0-9]+$ ]]'
check "the user's process files are theirs" \
    wait_for 5 eval '[ "$(as "$U" "cat $MP/vms/g2/procs/$UP/stdout")" = user-out ]'
out=$(as_open "$U" "proc_stdout_stream g2 $UP")
check "the user streams their own process ($out)" test "$out" = "ok: "
exec 8<>"$MP/vms/g2/ctl"
ctl_cmd 8 'exec -- sh -c "echo root2"'
RP2=$PAYLOAD
ctl_cmd 8 "open /etc/shadow read"
RH2=$PAYLOAD
out=$(as_open "$U" "proc_stdout_stream g2 $RP2")
check "on their VM the user cannot stream root's process ($out)" \
    test "$out" = "error: proc_stdout_stream: proc#$RP2: Operation not permitted (the process belongs to uid 0)"
out=$(as_open "$U" "fd_stream g2 $RH2")
check "nor root's handle ($out)" \
    test "$out" = "error: fd_stream: file#$RH2: Operation not permitted (the file handle belongs to uid 0)"
out=$(as_vmctl "$U" g2 "read $RH2 100")
check "nor read through it ($out)" \
    test "$out" = "error: read: file#$RH2: Operation not permitted (the file handle belongs to uid 0)"
out=$(as_vmctl "$U" g2 "kill $RP2")
check "nor signal root's process ($out)" \
    test "$out" = "error: kill: proc#$RP2: Operation not permitted (the process belongs to uid 0)"
out=$(as "$U" "cat $MP/vms/g2/procs/$RP2/stdout")
check "nor read its output file ($out)" eval '[[ "$out" == *"Permission denied"* ]]'
ctl_cmd 8 "wait $UP 5s"
check "root may wait for the user's process ($STATUS $PAYLOAD)" \
    test "$STATUS $PAYLOAD" = "ok exit 0"
: >"$T/user.log"
chmod 644 "$T/user.log"
out=$(runuser -u "$U" -- bash -c '
    id=$(cat "$0/clone"); exec 3<>"$0/streams/$id/ctl"
    echo "tail_file g2 $1 site=mine.test.lua:3 test=mine" >&3
    IFS= read -r l <&3; echo "$l"; head -c "${l##* }" <&3 >/dev/null
    cat "$0/vms/g2/streams"
    ' "$MP" "$T/user.log" 2>&1)
log "$out"
check "the user's stream on g2 is described to them" \
    eval 'echo "$out" | grep -qx "tail_file(\"$T/user.log\") created at mine.test.lua:3 (test \"mine\")"'
out=$(runuser -u nobody -- cat "$MP/vms/g2/streams" 2>&1)
check "an empty listing once the user's stream is closed ($out)" test -z "$out"
out=$(runuser -u nobody -- bash -c 'cat "$0/vms/g/streams"' "$MP" 2>&1)
check "others see root's stream on g hidden too ($out)" \
    test "$out" = "tail_file(<hidden>) of uid 0"
exec 5>&- 6>&- 7>&- 8>&-
