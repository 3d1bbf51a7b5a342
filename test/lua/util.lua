-- util.lua - small assertions and helpers for the *.test.lua files.
local M = {}

function M.eq(got, want, what)
  if got ~= want then
    error(("%s: expected %q, got %q"):format(what or "value",
      tostring(want), tostring(got)), 2)
  end
end

--- f must raise an error whose message starts with prefix.
function M.raises(prefix, f, ...)
  local ok, err = pcall(f, ...)
  if ok then error("expected an error starting `" .. prefix .. "`", 2) end
  err = tostring(err)
  if err:sub(1, #prefix) ~= prefix then
    error(("expected an error starting `%s`, got `%s`"):format(prefix, err), 2)
  end
  return err
end

local n = 0
--- A fresh file under the test's private temp dir, with optional content.
function M.tmpfile(content)
  n = n + 1
  local dir = os.getenv("PROVIUM_TEST_TMP") or "/tmp"
  local p = ("%s/lua-%d-%d.log"):format(dir, n, math.random(1 << 30))
  local f = assert(io.open(p, "wb"))
  f:write(content or "")
  f:close()
  return p
end

function M.append(p, s)
  local f = assert(io.open(p, "ab"))
  f:write(s)
  f:close()
end

--- Wait for cond() with a deadline, checking every 50 ms (no hot loop:
--- the daemon shares the CPUs). Raises naming `what` on timeout.
function M.wait(cond, secs, what)
  local core = require "provium.core"
  local deadline = core.now() + secs
  while not cond() do
    if core.now() >= deadline then
      error(("timed out after %gs waiting for %s"):format(secs, what), 2)
    end
    os.execute("sleep 0.05")
  end
end

--- Read stream t's live `data` file (a reader of its own, from byte 0:
--- the test's cursor is not moved) until it holds at least n bytes, or
--- to its end of file when n is nil, within secs. Waits on the fd.
function M.read_data(t, n, secs)
  local core = require "provium.core"
  local fd <close> = assert(core.open(t:path() .. "/data", "r"))
  local deadline = core.now() + secs
  local got = {}
  local have = 0
  while not n or have < n do
    local left = deadline - core.now()
    if left <= 0 or not fd:poll(left) then
      error(("data: %d bytes after %gs, want %s"):format(have, secs,
        n and tostring(n) or "the end of file"), 2)
    end
    local s = assert(fd:read())
    if s == "" then break end
    got[#got + 1] = s
    have = have + #s
  end
  return table.concat(got)
end

--- The line of the caller (so a test can say where it opened a stream).
function M.line()
  return debug.getinfo(2, "l").currentline
end

return M
