#!/usr/bin/env bash
# vm.sh - provium-vm registers the VMs it starts with the mount named by
# PROVIUM_MOUNT (no --mount), and fails loudly when registration fails:
# the daemon's message, a non-zero exit, and the VM stopped again (no
# QEMU left, no state left). QEMU starts; the guest need not boot.
# Skipped (77) without qemu-system-x86_64.
. "$(dirname "$0")/lib.sh"

command -v qemu-system-x86_64 >/dev/null || { log "no QEMU"; exit 77; }
IMAGE=$BUILD/guest-image
[ -f "$IMAGE/vmlinuz" ] || { fail "no guest image at $IMAGE (the e2e_image fixture builds it)"; exit 1; }
VMCTL=$SRC/contrib/provium-vm
export PROVIUM_VM_DIR=$T/vms PROVIUM_GUEST_IMAGE=$IMAGE
register vmroot "$T/vms" # QEMU daemonizes: the sweep stops it by its pidfile
register vmroot "$T/vms2"
n1=pvt$$a n2=pvt$$b
CLEANUP+=("'$VMCTL' stop $n1 --grace 1 >/dev/null 2>&1" "'$VMCTL' stop $n2 --grace 1 >/dev/null 2>&1"
    "PROVIUM_VM_DIR='$T/vms2' '$VMCTL' stop $n1 --grace 1 >/dev/null 2>&1")
MP=$T/mnt
start_fs "$FS_BIN" "$MP" --agent "$AGENT_BIN" || exit 1

# PROVIUM_MOUNT names the mount: vm1 is registered there.
PROVIUM_MOUNT=$MP "$VMCTL" start "$n1" --accel tcg >"$T/start1.out" 2>"$T/start1.err"
rc=$?
check "start with PROVIUM_MOUNT (rc $rc)" test $rc = 0
check "registered with \$PROVIUM_MOUNT's daemon" test -d "$MP/vms/$n1"
check "registered with its agent and console sockets" eval \
    'grep -qx "agent: unix:$PROVIUM_VM_DIR/$n1/agent.sock" "$MP/vms/$n1/info"'
check "show says which mount" grep -qx "mount=$MP" "$T/start1.out"

# The same name again, with a new VM: the daemon refuses; so does
# provium-vm, loudly, and stops what it started.
mkdir -p "$T/vms2"
PROVIUM_VM_DIR=$T/vms2 PROVIUM_MOUNT=$MP "$VMCTL" start "$n1" --accel tcg \
    >"$T/start2.out" 2>"$T/start2.err"
rc=$?
check "a failed vm add fails the start (rc $rc)" test $rc != 0
check "with the daemon's message ($(cat "$T/start2.err"))" \
    grep -q "registering $n1 with $MP failed: vm add: \`$n1\` exists" "$T/start2.err"
check "and the second QEMU is stopped" wait_for 10 eval \
    '! pgrep -f "$T/vms2/$n1/qemu.pid" >/dev/null'
check "and its state is gone" test ! -e "$T/vms2/$n1"
check "the first VM is still registered" test -d "$MP/vms/$n1"

# An explicit mount with no daemon: an error, nothing left.
PROVIUM_MOUNT=$T/nomount "$VMCTL" start "$n2" --accel tcg >/dev/null 2>"$T/start3.err"
rc=$?
check "PROVIUM_MOUNT without a mount: an error (rc $rc)" test $rc != 0
check "saying so" grep -q "cannot register $n2: no proviumfs mount at $T/nomount" "$T/start3.err"
check "no QEMU left for it" wait_for 10 eval '! pgrep -f "$PROVIUM_VM_DIR/$n2/qemu.pid" >/dev/null'

check "stop: vm del and QEMU ended" "$VMCTL" stop "$n1" --grace 1
check "stop: unregistered" test ! -e "$MP/vms/$n1"
check "no QEMU left" wait_for 10 eval '! pgrep -f "$PROVIUM_VM_DIR/$n1/qemu.pid" >/dev/null'
