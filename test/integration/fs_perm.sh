#!/usr/bin/env bash
# fs_perm.sh - SPEC §8 on a shared mount (-o allow_other, which forces
# default_permissions): streams belong to the uid that cloned them, only
# root may add VMs or use the host VM. Needs root (runs as uid 65534 via
# setpriv); skipped (77) otherwise, a failure under PROVIUM_REQUIRE_ALL=1.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skip "needs root (runs commands as uid 65534)"
command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
chmod 755 "$T"
start_fs -o allow_other
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
as_nobody() { timeout 20 "${NOBODY[@]}" bash -c "$1" 2>&1; } # bounded

check "default_permissions is on" \
    grep -q " $MP .*default_permissions" /proc/mounts
check "anyone reads README" \
    eval 'as_nobody "head -c 8 $MP/README" | grep -q Provium'

F=$T/app.log
echo secret >"$F"
chmod 644 "$F"
new_stream 3 "tail_file host $F start=beginning" || exit 1
ROOT_ID=$ID
check "root's stream is not readable by others" \
    eval 'as_nobody "timeout 5 cat $MP/streams/$ROOT_ID/data" | grep -q "Permission denied"'
check "nor controllable" \
    eval 'as_nobody "echo close > $MP/streams/$ROOT_ID/ctl" | grep -q "Permission denied"'
check "nor removable" \
    eval 'as_nobody "rmdir $MP/streams/$ROOT_ID" | grep -qE "Permission denied|Operation not permitted"'
check "others cannot add VMs" \
    eval 'as_nobody "echo vm add x agent=unix:/x > $MP/ctl" | grep -q "Permission denied"'
check "others cannot use the host VM's ctl" \
    eval 'as_nobody "echo \"exec -- id\" > $MP/vms/host/ctl" | grep -q "Permission denied"'

# A user's own slot: theirs, and the host VM refuses them with a reason.
out=$(as_nobody "id=\$(cat $MP/clone); stat -c %u $MP/streams/\$id;
    exec 3<>$MP/streams/\$id/ctl; echo \"tail_file host $F\" >&3;
    IFS= read -r l <&3; echo \"\$l\"; head -c \${l##* } <&3; echo;
    exec 3>&-; rmdir $MP/streams/\$id && echo removed")
check "a user's slot is owned by them" eval '[ "$(echo "$out" | sed -n 1p)" = 65534 ]'
check "host VM refused to a user: error (EPERM)" \
    eval 'echo "$out" | sed -n 2,3p | grep -q "Operation not permitted"'
check "a user can rmdir their own slot" eval 'echo "$out" | grep -q removed'
check "root's stream still alive" test -d "$MP/streams/$ROOT_ID"
exec 3>&-
