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

return M
