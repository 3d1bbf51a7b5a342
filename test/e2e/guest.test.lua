-- Run by mount_vm.sh against a real QEMU guest registered with the mount.
local provium = require "provium"
local u = require "util"
local vm = provium.vm(assert(os.getenv("PROVIUM_E2E_VM")))

provium.test("the console stream starts with the boot log", function()
  local c <close> = vm:console():read()
  c:expect("PROVIUM-GUEST-READY", "120s")
  u.eq(c:kind(), "console", "kind")
end)

provium.test("a process in the guest", function()
  local r = vm:run("uname -s; echo err >&2; exit 3", { timeout = "60s" })
  u.eq(r.code, 3, "exit code")
  u.eq(r.stdout, "Linux\n", "stdout")
  u.eq(r.stderr, "err\n", "stderr")
end)

provium.test("a guest file, tailed across appends", function()
  u.eq(vm:run("echo first > /tmp/g.log").code, 0, "create")
  local t <close> = vm:tail_file("/tmp/g.log", { start = "beginning" })
  u.eq(t:next("30s"), "first\n", "history")
  vm:run("echo second >> /tmp/g.log")
  t:expect("second", "30s")
end)

provium.test("console writes reach the guest shell", function()
  local c <close> = vm:console():read({ start = "end" })
  vm:console():write("echo provium-$((6*7))\n")
  c:expect("provium-42", "60s")
end)

provium.test("quiesce refuses while a console stream is live", function()
  local c = vm:console():read()
  local e = u.raises("vm:snapshot() failed for `" .. vm:name() .. "`",
    vm.quiesce, vm)
  assert(e:find("console(" .. vm:name() .. ") created at guest.test.lua:", 1,
    true), e)
  c:close()
  vm:quiesce()
end)
