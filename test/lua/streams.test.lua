-- The stream surface of SPEC §7 on Tail streams of the host VM.
local provium = require "provium"
local u = require "util"
local host = provium.vm("host")

provium.test("next returns frames, pending bytes first, nil on timeout", function()
  local p = u.tmpfile("boot\n")
  local t <close> = host:tail_file(p, { start = "beginning" })
  u.eq(t:next("5s"), "boot\n", "first frame")
  u.eq(t:next("100ms"), nil, "next on timeout")
  u.append(p, "ready: yes\nrest\n")
  u.eq(t:read_until("yes", "5s"), "ready: yes", "read_until prefix")
  -- End the source while bytes are pending: eof must still say false.
  os.remove(p)
  u.eq(u.read_data(t, nil, 5), "boot\nready: yes\nrest\n", "whole stream")
  u.eq(t:info().state, "ended", "the source has ended")
  u.eq(t:eof(), false, "eof while pending, source ended")
  u.eq(t:next(0), "\nrest\n", "pending replayed by next")
  u.eq(t:eof(), true, "eof once nothing is pending")
  u.eq(t:next(0), nil, "next at the end")
end)

provium.test("expect discards, drain returns pending first then frames", function()
  local p = u.tmpfile()
  local t <close> = host:tail_file(p)
  u.append(p, "abc READY def")
  t:expect("READY", "5s")
  u.append(p, "second")
  -- Wait until the second write arrived, without consuming it: a data
  -- reader of our own waits on its fd.
  u.eq(u.read_data(t, 19, 5), "abc READY defsecond", "both writes")
  local frames = t:drain("200ms")
  u.eq(#frames, 2, "drain frame count")
  u.eq(frames[1], " def", "pending first")
  u.eq(frames[2], "second", "then the next frame")
  u.eq(#t:drain(0), 0, "nothing more")
end)

provium.test("timeouts raise Provium's messages with detail after `; `", function()
  local p = u.tmpfile("something else\n")
  local t <close> = host:tail_file(p, { start = "start" })
  local e = u.raises("read_until timed out waiting for `never`", t.read_until,
    t, "never", "150ms")
  assert(e:find("; timeout 150ms", 1, true), e)
  assert(e:find("something else", 1, true), "last bytes seen: " .. e)
  u.raises("expect timed out waiting for `nope`", t.expect, t, "nope", 0.1)
  -- Nothing was consumed by the timed-out ops.
  u.eq(t:next(0), "something else\n", "bytes kept")
end)

provium.test("durations: numbers, strings, and Provium's errors", function()
  local t <close> = host:tail_file(u.tmpfile())
  u.eq(t:next(0.05), nil, "number seconds")
  u.eq(t:next("50ms"), nil, "ms string")
  u.raises("duration: must be a finite, non-negative number (got -1)",
    t.next, t, -1)
  u.raises("duration: must be a finite, non-negative number (got NaN)",
    t.next, t, 0 / 0)
  u.raises("duration: expected number|string, got table", t.next, t, {})
  u.raises("duration: cannot parse `soon`", t.next, t, "soon")
end)

provium.test("close: next nil, read_until raises, eof true, idempotent", function()
  local p = u.tmpfile("a:b")
  local t = host:tail_file(p, { start = "beginning" })
  u.eq(t:read_until(":", "5s"), "a:", "match")
  t:close()
  t:close()
  u.eq(t:next(), nil, "next after close")
  u.raises("stream closed", t.read_until, t, "b")
  u.raises("stream closed", t.expect, t, "b")
  u.eq(t:eof(), true, "eof after close")
  -- The daemon's directory is gone.
  u.eq(io.open(provium.mount() .. "/streams/" .. t:id() .. "/info"), nil,
    "stream directory removed")
end)

provium.test("EOF: a deleted file ends the stream", function()
  local p = u.tmpfile("last words")
  local t <close> = host:tail_file(p, { start = "beginning" })
  u.eq(t:next("5s"), "last words", "data")
  os.remove(p)
  u.eq(t:next("5s"), nil, "nil at EOF")
  u.eq(t:eof(), true, "eof")
  u.raises("stream EOF", t.read_until, t, "x", "1s")
end)

provium.test("tail start modes and Provium's messages for bad ones", function()
  local p = u.tmpfile("abcdef")
  local function first(start)
    local t <close> = host:tail_file(p, { start = start })
    return t:next("2s")
  end
  u.eq(first("beginning"), "abcdef", "beginning")
  u.eq(first(2), "cdef", "offset")
  u.eq(first(-2), "ef", "N before the end")
  u.eq(first(-100), "abcdef", "clamped at 0")
  u.raises('vm:tail_file: opts.start = `middle` (expected "beginning"|"end"|number)',
    host.tail_file, host, p, { start = "middle" })
  u.raises('vm:tail_file: opts.start type boolean not supported',
    host.tail_file, host, p, { start = true })
  u.raises("vm:tail_file: first arg must be a path string", host.tail_file, host, 42)
  u.raises("vm:tail_file: second arg must be opts table, got string",
    host.tail_file, host, p, "beginning")
end)

provium.test("a missing file or VM is an error with the OS message", function()
  u.raises("", host.tail_file, host, "/nonexistent/provium/file")
  local e = select(2, pcall(host.tail_file, host, "/nonexistent/provium/file"))
  assert(tostring(e):find("No such file or directory", 1, true), e)
  local e2 = select(2, pcall(provium.vm("no-such-vm").tail_file,
    provium.vm("no-such-vm"), "/tmp/x"))
  assert(tostring(e2):find("no-such-vm", 1, true), e2)
end)

provium.test("creation_site, id, path, kind, detail, info", function()
  local t <close>, line = host:tail_file(u.tmpfile()), u.line()
  local site = t:creation_site()
  u.eq(site.file, "streams.test.lua", "site file")
  u.eq(site.line, line, "site line: the line of the open")
  u.eq(t:kind(), "tail_file", "kind")
  assert(t:path():find("/streams/" .. t:id(), 1, true), t:path())
  local info = t:info()
  u.eq(info.kind, "tail_file", "info kind")
  u.eq(info.test, "creation_site, id, path, kind, detail, info", "info test")
  local f = assert(io.open(t:path() .. "/site"))
  u.eq(f:read("a"), "streams.test.lua:" .. line .. "\n", "site file")
  f:close()
  -- From a helper function: the test file's line, not the helper's.
  local function open_it() return host:tail_file(u.tmpfile()) end
  local s0 <close>, line0 = open_it(), u.line()
  u.eq(s0:creation_site().line, line0, "site through a local helper")
  -- Opened from a chunk that is no test file, on its own stack: no site.
  local co = coroutine.wrap(load(
    "return require('provium').vm('host'):tail_file(...)", "=helper.lua"))
  local s = co(u.tmpfile())
  u.eq(s:creation_site(), nil, "no test frame")
  s:close()
end)

provium.test("info values round-trip the daemon's escaping", function()
  -- A path with a newline, a backslash and an escape character: the
  -- daemon shows it as one escaped line, info() gives the path back.
  local p = u.tmpfile() .. "-a\\x41\nstate: ended\27"
  u.append(p, "x")
  local t <close> = host:tail_file(p)
  local info = t:info()
  u.eq(info.detail, p, "detail unescaped")
  u.eq(info.state, "live", "no forged state line")
  os.remove(p)
end)

provium.test("garbage collection closes a stream", function()
  local id
  do
    local t = host:tail_file(u.tmpfile())
    id = t:id()
    t = nil
  end
  for _ = 1, 3 do collectgarbage() end
  local dir = provium.mount() .. "/streams/" .. id .. "/info"
  u.wait(function()
    local f = io.open(dir)
    if f then f:close() end
    return f == nil
  end, 5, "the collector to close the stream")
end)

provium.test("expect across frames, then pending replay", function()
  local p = u.tmpfile()
  local t <close> = host:tail_file(p)
  u.append(p, "...RE")
  u.eq(t:next("5s"), "...RE", "first half arrived")
  u.append(p, "AD")
  u.append(p, "Y!tail")
  -- The test cursor is past "...RE": the pattern must straddle the two
  -- later frames only.
  t:expect("ADY", "5s")
  u.eq(t:next(0), "!tail", "pending bytes after the match")
  u.eq(t:eof(), false, "live")
end)

provium.test("drain on a quiet stream takes about its timeout", function()
  local core = require "provium.core"
  local t <close> = host:tail_file(u.tmpfile())
  local t0 = core.now()
  u.eq(#t:drain("300ms"), 0, "nothing")
  local dt = core.now() - t0
  assert(dt >= 0.3 and dt < 1.3, ("drain took %.3f s"):format(dt))
  t0 = core.now()
  t:drain()
  dt = core.now() - t0
  assert(dt >= 0.5 and dt < 1.5, ("default drain took %.3f s"):format(dt))
end)

provium.test("wrong argument types name the method and the argument", function()
  local t <close> = host:tail_file(u.tmpfile())
  u.raises("bad argument #1 to 'read_until' (string, provium.re or list " ..
    "expected, got number)", t.read_until, t, 42)
  u.raises("bad argument #1 to 'expect' (string, provium.re or list " ..
    "expected, got no value)", t.expect, t)
  u.raises("bad argument #1 to 'vm' (string expected, got table)",
    provium.vm, {})
  u.raises("bad argument #2 to 'test' (function expected, got no value)",
    provium.scope, "x", nil)
end)
