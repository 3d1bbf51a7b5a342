--[[
provium.lua - Provium's stream API for Lua 5.4 test authors, over the mount.

Every object here is a thin client of the files under the mount
(SPEC §3): a stream is an open `streams/<id>/ctl` file that wrote the open
command (so it owns the stream: when the file is closed, or the process
dies, the daemon closes the stream); each op writes one command line and
reads its reply, `<status> <length>\n<payload>`, on the same open file.
The daemon enforces every timeout, so a call never blocks past its op's
timeout. Reads interrupted by a signal are retried, from Lua, so that
Ctrl-C in the interpreter still raises "interrupted!".

Errors follow Provium: misuse and failed expectations raise, with the
messages of SPEC §7 (detail after "; "); `next` returns nil at EOF, on
timeout and after close.
]]

local core = require "provium.core"

local M = {}

local mountpoint = os.getenv("PROVIUM_MOUNT") or "/run/provium"
local check_arg -- defined below, with the other helpers

--- provium.mount([path]): set (or get) the mount the library talks to.
function M.mount(path)
  if path ~= nil then
    check_arg(1, "mount", path, "string")
    mountpoint = path
  end
  return mountpoint
end

local function path(...)
  return table.concat({ mountpoint, ... }, "/")
end

-- ---------------------------------------------------------------------
-- Command lines and durations
-- ---------------------------------------------------------------------

local escapes = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t" }

--- Quote any byte string as one command word (SPEC §5 syntax).
local function quote(s)
  s = tostring(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    return escapes[c] or string.format("\\x%02x", c:byte())
  end) .. '"'
end
M._quote = quote

local function command(...)
  local words = {}
  for i = 1, select("#", ...) do
    local w = select(i, ...)
    if w ~= nil then
      words[#words + 1] = w
    end
  end
  return table.concat(words, " ") .. "\n"
end

-- Rust's Display for f64, which Provium's messages use.
local function fmtnum(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  local i = math.tointeger(v)
  if i then return tostring(i) end
  return string.format("%.17g", v):gsub("0+$", "")
end

--- A duration argument (seconds, or a string with ms/s/m/h) as a command
--- word; nil stays nil (the daemon applies the op's default).
local function duration(v)
  if v == nil then return nil end
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge or v < 0 then
      error(("duration: must be a finite, non-negative number (got %s)")
        :format(fmtnum(v)), 3)
    end
    return string.format("%.6f", v)
  elseif t == "string" then
    return quote(v) -- the daemon parses it and reports Provium's message
  end
  error("duration: expected number|string, got " .. t, 3)
end
M._duration = duration

-- ---------------------------------------------------------------------
-- Talking to a ctl file
-- ---------------------------------------------------------------------

--- An I/O error on the mount, with what it means when the daemon is gone.
local function io_error(msg, err)
  if err == core.ENOTCONN or err == core.ECONNABORTED then
    error(("provium: the mount at %s is gone (proviumfs died or was " ..
      "unmounted): %s"):format(mountpoint, msg), 0)
  end
  error("provium: " .. msg, 0)
end

--- Lua-style argument errors: "bad argument #2 to 'read_until' (string
--- expected, got number)".
function check_arg(n, fname, v, want, optional)
  if (v == nil and optional) or type(v) == want then return end
  error(("bad argument #%d to '%s' (%s expected, got %s)")
    :format(n, fname, want, v == nil and "no value" or type(v)), 3)
end

local function read_retry(fd, n)
  while true do
    local s, msg, err = fd:read(n)
    if s then return s end
    if err ~= core.EINTR then
      io_error(msg, err)
    end
  end
end

--- Read one reply: status, payload.
local function read_reply(fd)
  local head = read_retry(fd, 4096)
  local nl = head:find("\n", 1, true)
  while not nl do
    local more = read_retry(fd, 4096)
    if more == "" then
      error("provium: truncated reply header `" .. head .. "`", 0)
    end
    head = head .. more
    nl = head:find("\n", 1, true)
  end
  local status, len = head:sub(1, nl - 1):match("^(%l+) (%d+)$")
  if not status then
    error("provium: malformed reply header `" .. head:sub(1, nl - 1) .. "`", 0)
  end
  len = tonumber(len)
  local parts, have = { head:sub(nl + 1) }, #head - nl
  while have < len do
    local chunk = read_retry(fd, math.min(len - have, 1 << 20))
    if chunk == "" then error("provium: truncated reply", 0) end
    parts[#parts + 1] = chunk
    have = have + #chunk
  end
  return status, table.concat(parts)
end

--- Write a command and read its reply. A malformed command fails the
--- write with EINVAL; its reason is the reply.
local function call(fd, line)
  local n, msg, err = fd:write(line)
  if not n and err ~= core.EINVAL then
    io_error(msg, err)
  end
  return read_reply(fd)
end

local function open_ctl(p)
  local fd, msg, err = core.open(p, "rw")
  if not fd then io_error(msg, err) end
  return fd
end

--- One command on a fresh open of a ctl file (VM and global commands).
local function ctl_call(p, line)
  local fd <close> = open_ctl(p)
  return call(fd, line)
end

local function read_file(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The daemon escapes every value it shows (control characters, backslash,
-- malformed UTF-8 as \xHH: docs/fs.md), so that none can forge a line;
-- a backslash always starts an escape.
local function unescape(v)
  return (v:gsub("\\x(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

local function keyvals(text)
  local t = {}
  for k, v in (text or ""):gmatch("([%w_]+):[ \t]*([^\n]*)") do
    v = unescape(v)
    t[k] = tonumber(v) or v
  end
  return t
end

-- ---------------------------------------------------------------------
-- Test scopes and creation sites
-- ---------------------------------------------------------------------

local current_test = nil
local scope = nil -- streams opened in the current provium.test

--- The first *.test.lua / *.fixture.lua frame on the stack, or nil.
local function creation_site()
  for level = 2, 64 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    local src = info.source:gsub("^@", "")
    if (src:match("%.test%.lua$") or src:match("%.fixture%.lua$"))
        and info.currentline > 0 then
      return { file = src, line = info.currentline }
    end
  end
  return nil
end

-- ---------------------------------------------------------------------
-- Streams (Tail, ConsoleStream, Capture share one implementation)
-- ---------------------------------------------------------------------

local Stream = {}
Stream.__index = Stream

local nouns = { console = "console", bridge_capture = "capture",
                nic_capture = "capture" }

local function stream_name(s)
  return s._meta.kind .. "(" .. s._meta.detail .. ")"
end

local function check_live(s, what)
  if s._closed then
    error(s._noun .. " closed", 3)
  end
end

local function raise(s, status, payload, level)
  if status == "closed" then
    error(s._noun .. " closed", level + 1)
  end
  error(payload, level + 1)
end

--- next(t?): the next frame (pending bytes first); nil at EOF, on timeout
--- and after close.
function Stream:next(t)
  if self._closed then return nil end
  local st, payload = call(self._fd, command("next", duration(t)))
  if st == "ok" then return payload end
  if st == "error" then error(payload, 2) end
  return nil
end

function Stream:read_until(pattern, t)
  check_arg(1, "read_until", pattern, "string")
  check_live(self)
  local st, payload = call(self._fd,
    command("read_until", quote(pattern), duration(t)))
  if st == "ok" then return payload end
  raise(self, st, payload, 2)
end

function Stream:expect(pattern, t)
  check_arg(1, "expect", pattern, "string")
  check_live(self)
  local st, payload = call(self._fd,
    command("expect", quote(pattern), duration(t)))
  if st == "ok" then return end
  raise(self, st, payload, 2)
end

--- drain(t?): every frame available within t (pending bytes first), as an
--- array of strings.
function Stream:drain(t)
  if self._closed then return {} end
  local st, payload = call(self._fd, command("drain", duration(t)))
  if st ~= "ok" then raise(self, st, payload, 2) end
  local frames, i = {}, 1
  while i <= #payload do
    local nl = payload:find("\n", i, true)
    local n = tonumber(payload:sub(i, nl - 1))
    frames[#frames + 1] = payload:sub(nl + 1, nl + n)
    i = nl + n + 1
  end
  return frames
end

function Stream:eof()
  if self._closed then return true end
  local st, payload = call(self._fd, command("eof"))
  if st ~= "ok" then raise(self, st, payload, 2) end
  return payload == "true"
end

--- close(): idempotent; also run by <close> variables and the collector.
function Stream:close()
  if self._closed then return end
  self._closed = true
  if scope then scope[self] = nil end
  pcall(call, self._fd, command("close"))
  self._fd:close()
end
Stream.__close = Stream.close
Stream.__gc = Stream.close

function Stream:creation_site()
  return self._site and { file = self._site.file, line = self._site.line }
end

function Stream:id() return self._id end
function Stream:path() return path("streams", self._id) end
function Stream:kind() return self._meta.kind end
function Stream:detail() return self._meta.detail end
function Stream:info()
  return keyvals(read_file(path("streams", self._id, "info")))
end
function Stream:__tostring()
  return stream_name(self) .. " #" .. self._id
end

--- Open a stream: allocate a slot through clone, write the open command
--- with the caller's site and test, read the reply.
local function open_stream(meta, ...)
  local site = creation_site()
  local id = read_file(path("clone"))
  if not id then
    error("provium: cannot read " .. path("clone") ..
      " (is proviumfs mounted there? set PROVIUM_MOUNT)", 3)
  end
  id = id:match("^(%d+)")
  local fd = open_ctl(path("streams", id, "ctl"))
  local words = table.pack(...)
  words[words.n + 1] = site and ("site=" .. quote(site.file .. ":" .. site.line))
  words[words.n + 2] = current_test and ("test=" .. quote(current_test))
  local line = command(table.unpack(words, 1, words.n + 2))
  local st, payload = call(fd, line)
  if st ~= "ok" then
    fd:close()
    error(payload, 3)
  end
  local s = setmetatable({ _fd = fd, _id = id, _meta = meta, _site = site,
    _noun = nouns[meta.kind] or "stream", _test = current_test }, Stream)
  if scope then scope[s] = true end
  return s
end

-- ---------------------------------------------------------------------
-- VMs, files, processes, consoles
-- ---------------------------------------------------------------------

local VM = {}
VM.__index = VM

local function vm_call(vm, ...)
  return ctl_call(path("vms", vm._name, "ctl"), command(...))
end

local function vm_call_ok(vm, what, ...)
  local st, payload = vm_call(vm, ...)
  if st ~= "ok" then
    error(("%s: %s"):format(what, payload), 3)
  end
  return payload
end

--- provium.vm(name): a VM known to the daemon (the built-in "host", or one
--- added with provium.add_vm or `vm add`).
function M.vm(name)
  check_arg(1, "vm", name, "string")
  return setmetatable({ _name = name }, VM)
end

--- provium.add_vm(name, {agent=, console=, nic= string or list})
function M.add_vm(name, opts)
  check_arg(1, "add_vm", name, "string")
  check_arg(2, "add_vm", opts, "table")
  check_arg(2, "add_vm", opts.agent, "string")
  local words = { "vm", "add", quote(name), "agent=" .. quote(opts.agent) }
  if opts.console then words[#words + 1] = "console=" .. quote(opts.console) end
  local nics = type(opts.nic) == "table" and opts.nic or { opts.nic }
  for _, nic in ipairs(nics) do words[#words + 1] = "nic=" .. quote(nic) end
  local st, payload = ctl_call(path("ctl"), command(table.unpack(words)))
  if st ~= "ok" then error("provium.add_vm: " .. payload, 2) end
  return M.vm(name)
end

--- provium.del_vm(name): `vm del`; the VM's streams are closed.
function M.del_vm(name)
  check_arg(1, "del_vm", name, "string")
  local st, payload = ctl_call(path("ctl"), command("vm", "del", quote(name)))
  if st ~= "ok" then error("provium.del_vm: " .. payload, 2) end
end

function VM:name() return self._name end
function VM:info() return keyvals(read_file(path("vms", self._name, "info"))) end

local start_words = { ["end"] = "end", beginning = "beginning", start = "start" }

local function start_option(start)
  if start == nil then return nil end
  if type(start) == "string" then
    if not start_words[start] then
      error(('vm:tail_file: opts.start = `%s` (expected "beginning"|"end"|number)')
        :format(start), 3)
    end
    return "start=" .. start
  elseif type(start) == "number" then
    if start ~= start or start == math.huge or start == -math.huge then
      error(('vm:tail_file: opts.start = `%s` (expected "beginning"|"end"|number)')
        :format(fmtnum(start)), 3)
    end
    local n = start < 0 and math.ceil(start) or math.floor(start)
    return "start=" .. string.format("%d", n)
  end
  error(('vm:tail_file: opts.start type %s not supported (expected number or "beginning"/"end")')
    :format(type(start)), 3)
end

function VM:tail_file(p, opts)
  if type(p) ~= "string" then
    error("vm:tail_file: first arg must be a path string", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("vm:tail_file: second arg must be opts table, got " .. type(opts), 2)
  end
  local start = start_option(opts and opts.start)
  return open_stream({ kind = "tail_file", detail = quote(p) },
    "tail_file", quote(self._name), quote(p), start)
end

-- Files: handles in the VM's agent (SPEC §5.4).
local File = {}
File.__index = File

function VM:open_file(p, opts)
  if type(p) ~= "string" then
    error("vm:open_file: first arg must be a path string", 2)
  end
  opts = opts or { read = true }
  local flags = {}
  for _, f in ipairs({ "read", "write", "create", "append", "truncate" }) do
    if opts[f] then flags[#flags + 1] = f end
  end
  local h = vm_call_ok(self, "vm:open_file", "open", quote(p),
    table.unpack(flags))
  return setmetatable({ _vm = self, _path = p, _h = h:match("%d+"),
    _pos = 0 }, File)
end

local function file_live(f)
  if not f._h then error("file: file is closed", 3) end
end

function File:read(n)
  file_live(self)
  local data = vm_call_ok(self._vm, "file:read", "read", self._h,
    tostring(n or 65536))
  self._pos = self._pos + #data
  return data
end

function File:write(data)
  file_live(self)
  vm_call_ok(self._vm, "file:write", "write", self._h, quote(data))
  self._pos = self._pos + #data
  return self
end

function File:seek(off, whence)
  file_live(self)
  local pos = vm_call_ok(self._vm, "file:seek", "seek", self._h,
    tostring(off or 0), whence or "set")
  self._pos = tonumber(pos:match("%d+")) or self._pos
  return self._pos
end

function File:close()
  if not self._h then return end
  pcall(vm_call, self._vm, "close", self._h)
  self._h = nil
end
File.__close = File.close
File.__gc = File.close

function File:fd()
  file_live(self)
  return tonumber(self._h)
end

--- A tail of the file's path from the current position.
function File:tail_stream()
  file_live(self)
  return open_stream({ kind = "file_tail_stream", detail = quote(self._path) },
    "file_tail_stream", quote(self._vm._name), quote(self._path),
    "start=" .. string.format("%d", self._pos))
end

function VM:fd_stream(f)
  local h
  if getmetatable(f) == File then
    if not f._h then error("vm:fd_stream: file is closed", 2) end
    h = f._h
  elseif math.type(f) == "integer" or (type(f) == "number" and f > 0) then
    h = string.format("%d", f)
  else
    error("vm:fd_stream expected fd or File, got " .. type(f), 2)
  end
  return open_stream({ kind = "fd_stream", detail = h },
    "fd_stream", quote(self._name), h)
end

-- Processes.
local Proc = {}
Proc.__index = Proc

local function argv_of(cmd, what)
  if type(cmd) == "string" then
    return { "/bin/sh", "-c", cmd }
  elseif type(cmd) == "table" and #cmd > 0 then
    return cmd
  end
  error(what .. ": command must be a string or an argv table", 3)
end

function VM:run_async(cmd, opts)
  opts = opts or {}
  if opts.timeout ~= nil then
    error("vm:run_async: `timeout` is not honoured here; pass it to " ..
      "`proc:wait(timeout)` instead", 2)
  end
  local words = { "exec" }
  if opts.cwd then words[#words + 1] = "cwd=" .. quote(opts.cwd) end
  for k, v in pairs(opts.env or {}) do
    words[#words + 1] = "env=" .. quote(k .. "=" .. v)
  end
  words[#words + 1] = "--"
  for _, a in ipairs(argv_of(cmd, "vm:run_async")) do
    words[#words + 1] = quote(a)
  end
  local id = vm_call_ok(self, "vm:run_async", table.unpack(words))
  return setmetatable({ _vm = self, _id = id:match("%d+") }, Proc)
end

function Proc:stdout_stream()
  return open_stream({ kind = "proc_stdout_stream", detail = "proc#" .. self._id },
    "proc_stdout_stream", quote(self._vm._name), self._id)
end

function Proc:stderr_stream()
  return open_stream({ kind = "proc_stderr_stream", detail = "proc#" .. self._id },
    "proc_stderr_stream", quote(self._vm._name), self._id)
end

--- wait(t?): {code=} or {signal=}; raises on timeout.
function Proc:wait(t)
  if t == 0 then
    error("proc:wait: timeout=0 would SIGKILL the process immediately. " ..
      "Use proc:status() to poll, or pass a small positive timeout " ..
      '(e.g. "100ms").', 2)
  end
  local st, payload = vm_call(self._vm, "wait", self._id, duration(t))
  if st == "timeout" then
    -- As Provium: a wait that times out kills the whole process group
    -- (the process leads its own group), so nothing a test started
    -- outlives the wait. The group may be gone already: ignore that.
    vm_call(self._vm, "kill", self._id, "KILL")
    error("proc:wait: " .. payload .. "; the process group was killed", 2)
  end
  if st ~= "ok" then error("proc:wait: " .. payload, 2) end
  local how, n = payload:match("^(%a+) (%-?%d+)")
  self._status = { code = how == "exit" and tonumber(n) or nil,
                   signal = how == "signal" and tonumber(n) or nil }
  return self._status
end

function Proc:kill(sig)
  vm_call_ok(self._vm, "proc:kill", "kill", self._id,
    sig and tostring(sig) or nil)
end

function Proc:write(data)
  vm_call_ok(self._vm, "proc:write", "stdin", self._id, quote(data))
end

function Proc:close_stdin()
  vm_call_ok(self._vm, "proc:close_stdin", "stdin_close", self._id)
end

function Proc:id() return tonumber(self._id) end

function Proc:status()
  local text = read_file(path("vms", self._vm._name, "procs", self._id,
    "status"))
  return keyvals(text), text
end

function Proc:pid()
  return (self:status()).pid
end

local function collect(s)
  local parts = {}
  while true do
    local chunk = s:next("60s")
    if not chunk then break end
    parts[#parts + 1] = chunk
  end
  s:close()
  return table.concat(parts)
end

--- run(cmd, opts?): run to completion; {code=, signal=, stdout=, stderr=}.
function VM:run(cmd, opts)
  opts = opts or {}
  local timeout = opts.timeout
  opts.timeout = nil
  local p = self:run_async(cmd, opts)
  local out, err = p:stdout_stream(), p:stderr_stream()
  local ok, st = pcall(p.wait, p, timeout or "60s")
  if not ok then
    -- Timed out (the group is killed by wait) or failed: nothing this
    -- call opened stays open, and the error names the timeout.
    out:close()
    err:close()
    local msg = tostring(st):gsub("^proc:wait: wait ", ""):gsub("^proc:wait: ", "")
    error("vm:run: " .. msg, 2)
  end
  return { code = st.code, signal = st.signal,
           stdout = collect(out), stderr = collect(err) }
end

-- Console.
local Console = {}
Console.__index = Console

function VM:console()
  return setmetatable({ _vm = self }, Console)
end

function Console:read(opts)
  local start = opts and opts.start
  return open_stream({ kind = "console", detail = self._vm._name },
    "console", quote(self._vm._name), start and ("start=" .. start) or nil)
end

function Console:write(data)
  vm_call_ok(self._vm, "console:write", "console_write", quote(data))
end

function Console:close() end

--- quiesce(): ok when no stream of this VM is live; raises the daemon's
--- refusal text otherwise.
function VM:quiesce()
  local st, payload = vm_call(self, "quiesce")
  if st ~= "ok" then error(payload, 2) end
end

function VM:open_stream_count()
  local text = read_file(path("vms", self._name, "streams")) or ""
  local n = 0
  for line in text:gmatch("[^\n]+") do
    if not line:match("^#") then n = n + 1 end
  end
  return n
end

-- ---------------------------------------------------------------------
-- Captures
-- ---------------------------------------------------------------------

local Iface = {}
Iface.__index = Iface

local function iface(kind, name)
  check_arg(1, kind, name, "string")
  return setmetatable({ _kind = kind, _name = name }, Iface)
end

function M.bridge(name) return iface("bridge", name) end
function M.nic(name) return iface("nic", name) end

function Iface:capture(opts)
  opts = opts or {}
  return open_stream({ kind = self._kind .. "_capture", detail = self._name },
    "capture", quote(self._name), "kind=" .. self._kind,
    opts.snaplen and ("snaplen=" .. string.format("%d", opts.snaplen)) or nil,
    opts.filter and ("filter=" .. quote(opts.filter)) or nil)
end

--- Live captures on this interface, from the daemon's status.
function Iface:active_captures()
  local text = read_file(path("ctl")) or ""
  for name, n in text:gmatch("capture:%s*(%S+)%s+(%d+)") do
    if unescape(name) == self._name then return tonumber(n) end
  end
  return 0
end

-- ---------------------------------------------------------------------
-- Test scopes
-- ---------------------------------------------------------------------

local function describe(s)
  local site = s._site and (" created at %s:%d"):format(s._site.file,
    s._site.line) or ""
  local test = s._test and (' (test "%s")'):format(s._test) or ""
  return stream_name(s) .. site .. test
end

--- provium.test(name, fn): run fn as a test scope. Streams opened in it
--- and still open at its end are closed and reported (returned as a list
--- of lines, and written to stderr). Errors from fn propagate after the
--- cleanup.
function M.test(name, fn)
  check_arg(1, "test", name, "string")
  check_arg(2, "test", fn, "function")
  local outer_test, outer_scope = current_test, scope
  current_test, scope = name, setmetatable({}, { __mode = "k" })
  local ok, err = xpcall(fn, debug.traceback)
  local leaked = {}
  for s in pairs(scope) do
    if not s._closed then
      leaked[#leaked + 1] = describe(s)
      s:close()
    end
  end
  table.sort(leaked)
  current_test, scope = outer_test, outer_scope
  for _, line in ipairs(leaked) do
    io.stderr:write("provium: stream left open: ", line, "\n")
  end
  if not ok then error(err, 0) end
  return leaked
end

--- provium.scope(name, fn): the same scope as provium.test, kept under a
--- second name so that code run by a test runner (which wraps
--- provium.test to count test points) can open a nested scope.
M.scope = M.test

function M.current_test() return current_test end

return M
