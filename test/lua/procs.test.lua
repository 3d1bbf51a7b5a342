-- Processes and files of SPEC §5.4 through the Lua API.
local provium = require "provium"
local u = require "util"
local host = provium.vm("host")

provium.test("run collects exit code and both outputs", function()
  local r = host:run("printf out; printf err >&2; exit 7")
  u.eq(r.code, 7, "code")
  u.eq(r.stdout, "out", "stdout")
  u.eq(r.stderr, "err", "stderr")
end)

provium.test("stdin write and close, wait", function()
  local p = host:run_async({ "cat" })
  local out <close> = p:stdout_stream()
  p:write("hello\n")
  u.eq(out:read_until("\n", "5s"), "hello\n", "echoed")
  p:close_stdin()
  u.eq(p:wait("5s").code, 0, "cat exits on EOF")
  u.eq(out:next("5s"), nil, "stdout ends")
end)

provium.test("proc:wait(0) is refused, run_async refuses timeout", function()
  local p = host:run_async({ "true" })
  u.raises("proc:wait: timeout=0 would SIGKILL", p.wait, p, 0)
  p:wait("5s")
  u.raises("vm:run_async: `timeout` is not honoured here", host.run_async,
    host, "true", { timeout = 1 })
end)

provium.test("files: write, seek, read, fd_stream", function()
  local p = u.tmpfile()
  local f <close> = host:open_file(p, { read = true, write = true })
  f:write("0123456789")
  u.eq(f:seek(2), 2, "seek")
  u.eq(f:read(3), "234", "read")
  u.eq(type(f:fd()), "number", "fd is the handle")
  f:seek(0)
  local s <close> = host:fd_stream(f)
  u.eq(s:read_until("9", "5s"), "0123456789", "fd_stream from the handle")
end)

-- SPEC §6.4: vm:run with a timeout kills the process group at the
-- deadline, closes the streams it opened, and raises naming the timeout.
provium.test("run: a timeout kills the group and closes its streams", function()
  local pidfile = u.tmpfile()
  local before = host:open_stream_count()
  local err = u.raises("vm:run: timed out after 300ms; the process group was killed",
    host.run, host,
    ("sleep 2001 & echo $$ $! > %s; wait"):format(pidfile),
    { timeout = "300ms" })
  u.eq(host:open_stream_count(), before, "streams of the run are closed")
  local f = assert(io.open(pidfile))
  local sh, child = f:read("n", "n")
  f:close()
  assert(sh and child, "pids recorded: " .. err)
  local function gone(pid)
    return not os.execute(("kill -0 %d 2>/dev/null"):format(pid))
  end
  local deadline = os.time() + 5
  while not (gone(sh) and gone(child)) and os.time() < deadline do
    os.execute("sleep 0.05")
  end
  assert(gone(sh), "the shell is killed")
  assert(gone(child), "its background child (same group) is killed")
end)
