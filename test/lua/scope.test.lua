-- provium.test scopes, leak reports, quiesce.
local provium = require "provium"
local u = require "util"
local host = provium.vm("host")

provium.test("a scope closes and reports streams left open", function()
  local held, line
  local leaked = provium.scope("inner", function()
    held, line = host:tail_file(u.tmpfile()), u.line()
  end)
  u.eq(#leaked, 1, "one leak")
  local at = ('created at scope.test.lua:%d (test "inner")'):format(line)
  u.eq(leaked[1]:sub(-#at), at, "the leak report names the exact line")
  assert(leaked[1]:match('^tail_file%(".+"%) created at '), leaked[1])
  u.eq(held:eof(), true, "closed by the scope")
end)

provium.test("quiesce refuses while streams are live, naming them", function()
  local t, line = host:tail_file("/dev/null"), u.line()
  u.eq(host:open_stream_count() >= 1, true, "counted")
  local e = u.raises("vm:snapshot() failed for `host`: ", host.quiesce, host)
  assert(e:find("open stream(s)", 1, true), e)
  local want = ('tail_file("/dev/null") created at scope.test.lua:%d (test '
    .. '"quiesce refuses while streams are live, naming them")'):format(line)
  assert(e:find(want, 1, true), "want `" .. want .. "` in: " .. e)
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
  local cap, line = nic:capture(), u.line()
  u.eq(nic:active_captures(), before + 1, "count up on open")
  local e = u.raises("vm:snapshot() failed for `nicvm`: ", vm.quiesce, vm)
  local want = ("nic_capture(lo) created at scope.test.lua:%d"):format(line)
  assert(e:find(want, 1, true), "want `" .. want .. "` in: " .. e)
  cap:close()
  u.eq(nic:active_captures(), before, "count down at once on close")
  vm:quiesce()
  provium.del_vm("nicvm")
end)
