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

provium.test("a login prompt with a kernel message spliced into it", function()
  local c <close> = vm:console():read({ start = "end" })
  -- In the guest: half a prompt on the console, a kernel record (the
  -- kernel prints it on the console at once: `quiet` keeps console
  -- messages up to priority 3), the other half, then nothing: the prompt
  -- waits. The pauses let the UART send each part before the next.
  local r = vm:run("printf provium-log >/dev/console; sleep 0.5; " ..
    "echo '<2>provium: a spliced record' >/dev/kmsg; sleep 0.5; " ..
    "printf 'in: ' >/dev/console", { timeout = "60s" })
  u.eq(r.code, 0, "the guest's script")
  local bytes, i, text = c:peek(provium.re("login: *$"), "60s",
    { skip = "printk" })
  u.eq(i, 1, "index")
  u.eq(text, "login: ", "the prompt as the pattern saw it")
  assert(bytes:find("provium%-log%[ *%d+%.%d+%] provium: a spliced " ..
    "record\r\nin: $"), "the record is in the raw bytes: " .. bytes)
  -- Without skip=printk the record breaks the prompt.
  u.raises("peek timed out waiting for regex `login: *$`", c.peek, c,
    provium.re("login: *$"), "1s")
  -- peek left it all in place: expect finds the same prompt.
  local i2, text2 = c:expect(provium.re("login: *$"), "10s",
    { skip = "printk" })
  u.eq(i2, 1, "expect after peek: index")
  u.eq(text2, text, "expect after peek: the same prompt")
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
