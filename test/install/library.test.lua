-- library.test.lua - the Lua library's fixes of issue 14, run by
-- test/install/lua.sh through provium-test (and its TAP through prove):
-- no silent 0/{} without a mount or VM, kind/detail as the daemon's info,
-- info keys with blanks, errors with Provium's messages and no position,
-- proc:status, console:write options, the kind of a capture on lo.
local provium = require "provium"
local host = provium.vm("host")

local function raises(want, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error: " .. want)
  err = tostring(err)
  assert(err:sub(1, #want) == want,
    ("expected an error starting `%s`, got `%s`"):format(want, err))
  return err
end

local function our_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("a"):match("^(%d+)"))
  f:close()
  return pid
end

provium.test("without a mount, calls raise instead of returning 0 or {}", function()
  local real = provium.mount()
  provium.mount("/nonexistent/provium")
  local ok, err = pcall(function()
    local want = "provium: no proviumfs mount at /nonexistent/provium"
    raises(want, provium.bridge("lo").active_captures, provium.bridge("lo"))
    raises(want, host.open_stream_count, host)
    raises(want, host.info, host)
    raises(want, provium.status)
    raises(want, provium.streams)
    raises(want, host.tail_file, host, "/etc/hostname")
  end)
  provium.mount(real)
  assert(ok, err)
  local nosuch = provium.vm("nosuch")
  raises("vm `nosuch`: No such file or directory", nosuch.info, nosuch)
  raises("vm `nosuch`: No such file or directory", nosuch.open_stream_count, nosuch)
end)

provium.test("kind and detail are the daemon's; info keys may hold blanks", function()
  local t <close> = host:tail_file("/etc/hostname")
  local info = t:info()
  assert(t:kind() == "tail_file" and info.kind == "tail_file")
  assert(t:detail() == "/etc/hostname", "detail is bare: " .. t:detail())
  assert(t:detail() == info.detail, "detail() == info().detail")
  assert(info["owner pid"] == our_pid(), "owner pid: " .. tostring(info["owner pid"]))
  assert(info["owner uid"] == 0 or type(info["owner uid"]) == "number")
  local cap <close> = provium.open({ "capture", "lo" })
  assert(cap:kind() == "nic_capture", "capture lo: " .. cap:kind())
  assert(cap:info().capture_kind == "nic")
end)

provium.test("errors carry Provium's messages and no position prefix", function()
  local t = host:tail_file("/etc/hostname")
  local e = raises("expect timed out waiting for `nope`", t.expect, t, "nope", "50ms")
  assert(not e:find("library.test.lua:", 1, true), e)
  t:close()
  assert(select(2, pcall(t.read_until, t, "x")) == "stream closed")
  assert(select(2, pcall(t.expect, t, "x")) == "stream closed")
  local held = host:tail_file("/etc/hostname")
  raises("duration: must be a finite, non-negative number (got -1)", held.next, held, -1)
  raises("vm:snapshot() failed for `host`", host.quiesce, host)
  held:close()
  raises("vm:tail_file: first arg must be a path string", host.tail_file, host, 42)
  -- Lua's own convention for bad arguments keeps the caller's position.
  local _, bad = pcall(t.read_until, t, 42)
  assert(bad:find("bad argument #1 to 'read_until'", 1, true), bad)
end)

provium.test("proc:status polls; there is no proc:pid", function()
  local p = host:run_async({ "sh", "-c", "read x" })
  assert(p:status().running == true, "running")
  p:write("go\n")
  local st = p:wait("5s")
  assert(st.code == 0)
  local s, text = p:status()
  assert(s.running == false and s.code == 0 and text == "exit 0", text)
  local k = host:run_async({ "sleep", "30" })
  k:kill("KILL")
  k:wait("5s")
  assert(k:status().signal == 9)
  assert(p.pid == nil, "no pid: the agent reports none")
  assert(p:id() > 0)
end)

provium.test("console:write takes timeout and refuses other options", function()
  local c = host:console()
  raises("console:write: opts.timeout_ms is not supported (use " ..
    "`timeout = \"500ms\"` or `timeout = 0.5`)", c.write, c, "x", { timeout_ms = 100 })
  raises("console:write: unknown option `tmo` (expected timeout)", c.write, c, "x", { tmo = 1 })
  raises("duration: cannot parse `soon`", c.write, c, "x", { timeout = "soon" })
  raises("duration: must be a finite, non-negative number (got -1)",
    c.write, c, "x", { timeout = -1 })
  -- A valid timeout reaches the daemon (the host VM has no console).
  raises("console:write: console_write: vm `host` has no console",
    c.write, c, "x", { timeout = "500ms" })
end)
