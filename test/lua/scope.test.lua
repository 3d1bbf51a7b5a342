-- provium.test scopes, leak reports, quiesce.
local provium = require "provium"
local u = require "util"
local host = provium.vm("host")

provium.test("a scope closes and reports streams left open", function()
  local held
  local leaked = provium.scope("inner", function()
    held = host:tail_file(u.tmpfile())
  end)
  u.eq(#leaked, 1, "one leak")
  assert(leaked[1]:match('^tail_file%(".+"%) created at scope%.test%.lua:%d+ %(test "inner"%)$'),
    leaked[1])
  u.eq(held:eof(), true, "closed by the scope")
end)

provium.test("quiesce refuses while streams are live, naming them", function()
  local t = host:tail_file("/dev/null")
  u.eq(host:open_stream_count() >= 1, true, "counted")
  local e = u.raises("vm:snapshot() failed for `host`: ", host.quiesce, host)
  assert(e:find("open stream(s)", 1, true), e)
  assert(e:find('tail_file("/dev/null") created at scope.test.lua:', 1, true), e)
  assert(e:find("Close streams before snapshotting.", 1, true), e)
  t:close()
  host:quiesce()
end)

provium.test("a capture on a VM's NIC is counted and blocks its quiesce", function()
  -- The agent endpoint need not answer: quiesce looks at streams only.
  local vm = provium.add_vm("nicvm", { agent = "unix:/nonexistent/agent.sock",
                                       nic = "lo" })
  local nic = provium.nic("lo")
  local before = nic:active_captures()
  local cap = nic:capture()
  u.eq(nic:active_captures(), before + 1, "count up on open")
  local e = u.raises("vm:snapshot() failed for `nicvm`: ", vm.quiesce, vm)
  assert(e:find("nic_capture(lo) created at scope.test.lua:", 1, true), e)
  cap:close()
  u.eq(nic:active_captures(), before, "count down at once on close")
  vm:quiesce()
  provium.del_vm("nicvm")
end)
