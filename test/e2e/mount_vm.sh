#!/usr/bin/env bash
# mount_vm.sh - issues 4, 5 and 6 together: a real QEMU guest, booted by
# contrib/provium-vm and registered with a private proviumfs, driven from
# Lua through the mount (console from boot, processes, a guest file tail,
# console writes, quiesce) and from the shell (vms/NAME/{console,info}),
# then stopped: its console streams end, its directory goes away.
# Skipped (77) only when QEMU is not installed; a failure then under
# PROVIUM_REQUIRE_ALL=1.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "no QEMU (qemu-system-x86)"

IMAGE=$BUILD/guest-image
VM=e2e$$
export PROVIUM_VM_DIR=$T/vms
register vmroot "$PROVIUM_VM_DIR"
LAUNCHER=$PROVIUM_SOURCE_DIR/contrib/provium-vm
stop_vm() { "$LAUNCHER" stop "$VM" >/dev/null 2>&1; }
trap 'rc=$?; stop_vm; (exit $rc); teardown' EXIT

start_fs
"$LAUNCHER" start "$VM" --image "$IMAGE" --mount "$MP" >"$T/vm.out" 2>&1 ||
    { cat "$T/vm.out" >&2; fail "provium-vm start"; exit 1; }
check "the VM is registered" test -d "$MP/vms/$VM"

export PROVIUM_MOUNT=$MP PROVIUM_E2E_VM=$VM PROVIUM_TEST_TMP=$T
export LUA_PATH="$PROVIUM_SOURCE_DIR/lua/?.lua;$PROVIUM_SOURCE_DIR/test/lua/?.lua;;"
export LUA_CPATH="$BUILD/lua/?.so;;"
check "Lua tests against the guest" timeout 240 lua5.4 \
    "$PROVIUM_SOURCE_DIR/lua/provium-test" "$here/guest.test.lua"

check "vms/$VM/console holds the boot log" \
    wait_for 120 grep -q PROVIUM-GUEST-READY "$MP/vms/$VM/console"
check "vms/$VM/info names the guest's agent" \
    wait_for 60 grep -q "^agent_state: up" "$MP/vms/$VM/info"

# A console stream left open ends with "console EOF" when QEMU dies (the
# VM is still registered: the console session ended, not the VM).
new_stream 5 "console $VM start=end" || exit 1
printf 'next 60s\n' >&5
kill -9 "$(cat "$PROVIUM_VM_DIR/$VM/qemu.pid")"
ctl_reply 5
check "console stream ends when QEMU dies ($STATUS: $PAYLOAD)" \
    test "$STATUS" = eof -a "${PAYLOAD%%;*}" = "console EOF"
# Removing the VM (provium-vm stop sends `vm del`) closes its streams.
stop_vm
ctl_cmd 5 'next 0'
check "vm del closed the VM's streams ($STATUS)" test "$STATUS" = closed
exec 5>&-
check "vm del removed vms/$VM" wait_for 10 test ! -e "$MP/vms/$VM"
