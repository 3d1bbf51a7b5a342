-- provium_spec.lua - the library under busted (Debian lua-busted), run by
-- test/install/lua.sh on a private mount: creation sites point at this
-- spec file, errors carry Provium's messages with no position prefix.
local provium = require "provium"

describe("provium under busted", function()
  local host = provium.vm("host")

  it("runs a process on the host VM", function()
    local r = host:run({ "sh", "-c", "echo out; echo err >&2; exit 3" })
    assert.are.same({ code = 3, stdout = "out\n", stderr = "err\n" },
      { code = r.code, stdout = r.stdout, stderr = r.stderr })
  end)

  it("gives a stream the spec file's creation site", function()
    local t <close> = host:tail_file("/etc/hostname", { start = "beginning" })
    local site = t:creation_site()
    assert.is_not_nil(site, "creation_site() in a *_spec.lua file")
    assert.are.equal("provium_spec.lua", site.file:match("[^/]*$"))
    assert.is_true(site.line > 0)
    assert.are.equal(site.file .. ":" .. site.line, t:info().site)
  end)

  it("raises Provium's messages without a position", function()
    local t <close> = host:tail_file("/etc/hostname")
    local ok, err = pcall(t.expect, t, "never-there", "100ms")
    assert.is_false(ok)
    assert.are.equal("expect timed out waiting for `never-there`",
      err:sub(1, #"expect timed out waiting for `never-there`"))
    t:close()
    local _, err2 = pcall(t.read_until, t, "x")
    assert.are.equal("stream closed", err2)
  end)
end)
