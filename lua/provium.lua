--[[
provium.lua - Provium's stream API for Lua 5.4 test authors, over the mount.

Every object here is a thin client of the files under the mount
(SPEC §3, docs/spec.md): a stream is an open `streams/<id>/ctl` file that
wrote the open command (so it owns the stream: when the file is closed, or
the process dies, the daemon closes the stream); each op writes one
command line and reads its reply, `<status> <length>\n<payload>`, on the
same open file. The daemon enforces every timeout, so a call never blocks
past its op's timeout. Reads interrupted by a signal are retried, from
Lua, so that Ctrl-C in the interpreter still raises "interrupted!".

Errors follow Provium: misuse and failed expectations raise, with the
messages of SPEC §7 (detail after "; ") and, as errors raised from
Provium's Rust, no Lua position prefix; only Lua-style "bad argument"
errors carry the caller's position, as Lua's own do. `next` returns nil at
EOF, on timeout and after close.

The annotations (---@class, ---@param, ---@return) are LuaLS/EmmyLua's:
editors with the Lua language server complete and check calls with them.
]]

local core = require "provium.core"

---@class provium
---@field VERSION string the product's version (the daemon's and the CLI's too)
local M = {}

M.VERSION = "0.1.0"

local mountpoint = os.getenv("PROVIUM_MOUNT") or "/run/provium"
if mountpoint == "" then mountpoint = "/run/provium" end
local check_arg -- defined below, with the other helpers
local is_regex -- defined with provium.re

--- Set (or get) the mount the library talks to: `PROVIUM_MOUNT`, or
--- `/run/provium`, until this is called.
---@param path? string the mount point
---@return string mount the mount in use
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
  return (string.format("%.17g", v):gsub("0+$", ""))
end

--- A duration argument (seconds, or a string with ms/s/m/h) as a command
--- word; nil stays nil (the daemon applies the op's default).
local function duration(v)
  if v == nil then return nil end
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge or v < 0 then
      error(("duration: must be a finite, non-negative number (got %s)")
        :format(fmtnum(v)), 0)
    end
    return string.format("%.6f", v)
  elseif t == "string" then
    return quote(v) -- the daemon parses it and reports Provium's message
  end
  error("duration: expected number|string, got " .. t, 0)
end
M._duration = duration

--- Seconds of a duration, parsed here (for the few waits the library
--- bounds itself), with Provium's messages.
local function seconds(v)
  if type(v) == "number" then
    duration(v)
    return v
  elseif type(v) ~= "string" then
    duration(v)
  end
  local n, unit = v:match("^%s*([%d.]+)%s*(%a*)%s*$")
  local scale = ({ [""] = 1, ms = 1e-3, s = 1, m = 60, h = 3600 })[unit or ""]
  n = tonumber(n)
  if not n or not scale then
    error(("duration: cannot parse `%s` (expected number or " ..
      "`Nms`/`Ns`/`Nm`/`Nh`)"):format(v), 0)
  end
  return n * scale
end
M._seconds = seconds

-- ---------------------------------------------------------------------
-- Talking to the mount
-- ---------------------------------------------------------------------

local function no_mount()
  error(("provium: no proviumfs mount at %s (start proviumfs, or set " ..
    "PROVIUM_MOUNT)"):format(mountpoint), 0)
end

--- An I/O error on the mount, with what it means when the daemon is gone.
local function io_error(msg, err)
  if err == core.ENOTCONN or err == core.ECONNABORTED then
    error(("provium: the mount at %s is gone (proviumfs died or was " ..
      "unmounted): %s"):format(mountpoint, msg), 0)
  end
  error("provium: " .. msg, 0)
end

--- Lua-style argument errors: "bad argument #2 to 'read_until' (string
--- expected, got number)", at the caller's position as Lua's own.
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
  -- A marked read_until/expect/peek puts fields after the length
  -- (docs/matching.md): "ok 12 1 3 9".
  local status, len, fields = head:sub(1, nl - 1):match("^(%l+) (%d+) ?(.*)$")
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
  return status, table.concat(parts), fields
end

--- Write a command; a malformed one fails the write with EINVAL and its
--- reason is the reply.
local function send(fd, line)
  local n, msg, err = fd:write(line)
  if not n and err ~= core.EINVAL then
    io_error(msg, err)
  end
end

--- Write a command and read its reply.
local function call(fd, line)
  send(fd, line)
  return read_reply(fd)
end

local function open_ctl(p)
  local fd, msg, err = core.open(p, "rw")
  if not fd then io_error(msg, err) end
  return fd
end

local function read_file(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function mounted()
  return read_file(path("README")) ~= nil
end

-- The daemon escapes every value it shows (control characters, backslash,
-- malformed UTF-8 as \xHH: docs/fs.md), so that none can forge a line;
-- a backslash always starts an escape.
local function unescape(v)
  return (v:gsub("\\x(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- Values that stay strings even when they look like numbers.
local text_keys = { detail = true, test = true, site = true, vm = true,
                    name = true, kind = true, source = true }

--- The daemon's "key: value" lines as a table, values unescaped; keys
--- may hold blanks ("owner pid"), a value is a number when it is one.
local function keyvals(text)
  local t = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local k, v = line:match("^([^:]+):[ \t]?(.*)$")
    if k then
      v = unescape(v)
      t[k] = (not text_keys[k] and v:match("^%-?%d+$") and tonumber(v)) or v
    end
  end
  return t
end

--- One command on a fresh open of a ctl file (VM and global commands).
local function ctl_call(p, line)
  local fd, msg, err = core.open(p, "rw")
  if not fd then
    if not mounted() then no_mount() end
    return nil, msg, err
  end
  local st, payload = call(fd, line)
  fd:close()
  return st, payload
end

-- ---------------------------------------------------------------------
-- Test scopes and creation sites
-- ---------------------------------------------------------------------

local current_test = nil
local scope = nil -- streams opened in the current provium.test

local site_patterns = { "%.test%.lua$", "%.fixture%.lua$", "_spec%.lua$" }

--- The first *.test.lua / *.fixture.lua / busted *_spec.lua frame on the
--- stack, or nil.
local function creation_site()
  for level = 2, 64 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    local src = info.source:gsub("^@", "")
    if info.currentline > 0 then
      for _, pat in ipairs(site_patterns) do
        if src:match(pat) then
          return { file = src, line = info.currentline }
        end
      end
    end
  end
  return nil
end

-- ---------------------------------------------------------------------
-- Patterns (SPEC §9; docs/matching.md)
-- ---------------------------------------------------------------------

local PATTERN_MAX_LEN = 4096

--- A pattern as the daemon's messages show it: at most 64 bytes,
--- C-escaped, `...` marking a cut.
local function shown(src)
  local cut = #src > 64
  local e = src:sub(1, 64):gsub("[%c\\\128-\255]", function(c)
    return escapes[c] or ("\\x%02x"):format(c:byte())
  end)
  return e .. (cut and "..." or "")
end

---A regex for read_until, expect and peek: PCRE syntax that a stream can
---match (no back-references, no lookaround; docs/matching.md).
---@class provium.Regex
---@field src string the regex as written
---@field flags string its flags, from `imsx`
local Regex = { __name = "provium.Regex" }
Regex.__index = Regex

is_regex = function(v)
  return getmetatable(v) == Regex
end

--- `-re/FLAGS "SRC"`: the word pair of the marked form (internal).
---@return string
function Regex:_word()
  return "-re" .. (self.flags ~= "" and "/" .. self.flags or "") .. " " ..
    quote(self.src)
end

function Regex:__tostring()
  return ("regex `%s`%s"):format(shown(self.src),
    self.flags ~= "" and " (flags " .. self.flags .. ")" or "")
end

--- A regex pattern object (SPEC §9.3). Flags: `i` caseless, `m` `^`/`$`
--- at every line, `s` `.` matches a newline, `x` blanks and `#` comments
--- ignored. The flags, the length and NUL bytes are checked here, with
--- the daemon's messages; the syntax and what a stream cannot match
--- (back-references, lookaround) by the daemon when an op uses it,
--- raising its message (``expect: regex `a(`: missing closing
--- parenthesis at offset 2``).
---@param src string
---@param flags? string letters from `imsx`
---@return provium.Regex
function M.re(src, flags)
  check_arg(1, "re", src, "string")
  check_arg(2, "re", flags, "string", true)
  local seen = {}
  for c in (flags or ""):gmatch(".") do
    if not ("imsx"):find(c, 1, true) then
      error(("unknown regex flag `%s` (expected i, m, s or x)"):format(
        shown(c)), 0)
    end
    seen[c] = true
  end
  local f = {}
  for c in ("imsx"):gmatch(".") do
    if seen[c] then f[#f + 1] = c end
  end
  local r = setmetatable({ src = src, flags = table.concat(f) }, Regex)
  if #src > PATTERN_MAX_LEN then
    error(("%s: too long (%d bytes, at most %d)"):format(tostring(r), #src,
      PATTERN_MAX_LEN), 0)
  end
  if src:find("\0", 1, true) then
    error(("%s: contains a NUL byte (write it as \\x00)"):format(
      tostring(r)), 0)
  end
  return r
end

--- s with every kernel log record removed, as `skip = "printk"` has the
--- patterns see it: `[`, 0-16 blanks, 1-12 digits, `.`, 1-9 digits, `]`,
--- then every byte up to and including the next newline (to the end of
--- s if none), wherever the `[` is.
---@param s string
---@return string
function M.strip_printk(s)
  check_arg(1, "strip_printk", s, "string")
  local out, keep, at = {}, 1, 1
  while true do
    local b = s:find("[", at, true)
    if not b then break end
    local sp, secs, frac, e = s:match("^%[( *)(%d+)%.(%d+)%]()", b)
    if sp and #sp <= 16 and #secs <= 12 and #frac <= 9 then
      out[#out + 1] = s:sub(keep, b - 1)
      local nl = s:find("\n", e, true)
      keep = nl and nl + 1 or #s + 1
      at = keep
    else
      at = b + 1
    end
  end
  out[#out + 1] = s:sub(keep)
  return table.concat(out)
end

-- ---------------------------------------------------------------------
-- Streams (Tail, ConsoleStream, Capture share one implementation)
-- ---------------------------------------------------------------------

---@class provium.Site
---@field file string the test file (its base name under provium-test)
---@field line integer

---A live stream: a Tail (tail_file, file_tail_stream, fd_stream,
---proc_stdout_stream, proc_stderr_stream), a ConsoleStream or a Capture.
---@class provium.Stream
local Stream = {}
Stream.__index = Stream

local nouns = { console = "console", bridge_capture = "capture",
                nic_capture = "capture" }
local quoted_kinds = { tail_file = true, file_tail_stream = true }

--- `kind(detail)`, as the daemon's streams files and SPEC §7 write it.
local function stream_name(s)
  local fmt = quoted_kinds[s._kind] and '%s("%s")' or "%s(%s)"
  return fmt:format(s._kind, s._detail)
end

local function check_live(s)
  if s._closed then
    error(s._noun .. " closed", 0)
  end
end

local function raise(s, status, payload)
  if status == "closed" then
    error(s._noun .. " closed", 0)
  end
  error(payload, 0)
end

--- The next frame (pending bytes first); nil at EOF, on timeout and
--- after close.
---@param t? number|string timeout: seconds, or "100ms", "2s", "1m", "1h" (default 10s)
---@return string|nil frame
function Stream:next(t)
  if self._closed then return nil end
  local st, payload = call(self._fd, command("next", duration(t)))
  if st == "ok" then return payload end
  if st == "error" then error(payload, 0) end
  return nil
end

---@alias provium.Pattern string|provium.Regex a literal (exact bytes) or a regex
---@alias provium.Patterns provium.Pattern|provium.Pattern[]

---@class provium.MatchOptions
---@field skip? "printk"|"none" `printk`: match as if kernel log records were not in the stream

--- The command line of a matching op, and whether its reply carries the
--- alternative and span (a regex or a list: the marked form).
local function match_command(op, p, t, opts)
  check_arg(3, op, opts, "table", true)
  local words, marked = { op }, false
  if type(p) == "string" then
    words[2] = quote(p)
  elseif is_regex(p) then
    marked = true
    words[2] = p:_word()
  elseif type(p) == "table" then
    if #p == 0 then
      error(("bad argument #1 to '%s' (a pattern or a non-empty list " ..
        "expected)"):format(op), 3)
    end
    marked = true
    for i, x in ipairs(p) do
      if type(x) == "string" then
        words[#words + 1] = "-ex " .. quote(x)
      elseif is_regex(x) then
        words[#words + 1] = x:_word()
      else
        error(("bad argument #1 to '%s' (item %d: string or provium.re " ..
          "expected, got %s)"):format(op, i, type(x)), 3)
      end
    end
  else
    error(("bad argument #1 to '%s' (string, provium.re or list " ..
      "expected, got %s)"):format(op, p == nil and "no value" or type(p)), 3)
  end
  -- A marked form always says its timeout: `-ex 5` alone would be
  -- today's literal `-ex` with a 5 s timeout.
  words[#words + 1] = duration(t) or (marked and "10s" or nil)
  local skip = false
  for k, v in pairs(opts or {}) do
    if k ~= "skip" then
      error(("%s: unknown option `%s` (expected skip)"):format(op,
        tostring(k)), 0)
    elseif v ~= "printk" and v ~= "none" then
      error(('%s: opts.skip = `%s` (expected "printk" or "none")')
        :format(op, tostring(v)), 0)
    end
    words[#words + 1] = "skip=" .. v
    skip = v == "printk"
  end
  return command(table.unpack(words)), marked, skip
end

--- The extras of a marked form's reply: index, text, captures. The
--- fields are `ALT FROM TO [G1FROM G1TO ...]`, offsets from the cursor
--- (`-` unknown); the payload starts at 0, or for expect at FROM.
local function match_results(op, payload, fields, skip)
  local alt, from, to, rest = (fields or ""):match("^(%d+) (%S+) (%d+)(.*)$")
  if not alt then
    error(("provium: malformed %s reply fields `%s`"):format(op,
      tostring(fields)), 0)
  end
  from, to = tonumber(from), tonumber(to)
  local base = op == "expect" and (from or to) or 0
  local function text(a, b)
    if not a then return nil end
    local t = payload:sub(a - base + 1, b - base)
    return skip and M.strip_printk(t) or t
  end
  local caps, n = {}, 0
  for a, b in rest:gmatch(" (%S+) (%S+)") do
    n = n + 1
    caps[n] = text(tonumber(a), tonumber(b))
  end
  return tonumber(alt), text(from, to), table.unpack(caps, 1, n)
end

-- A matching op's command line (match_command, called by the method
-- itself so that its argument errors name the caller's line) sent, its
-- reply checked: the payload and the reply's fields.
local function run_match(self, line)
  check_live(self)
  local st, payload, fields = call(self._fd, line)
  if st ~= "ok" then raise(self, st, payload) end
  return payload, fields
end

--- The bytes up to and including the first match of `pattern`; the
--- bytes after it stay pending. A string is a literal (as Provium); a
--- `provium.re` regex or a list of patterns (up to 256, the earliest
--- match end wins, then the lower index) also returns the 1-based index
--- of the alternative that matched, the matched text and the regex's
--- captures (nil for a group that took no part). Raises
--- ``read_until timed out waiting for `P`; …``, `stream EOF` or
--- `stream closed` (console/capture for those streams).
---@param pattern provium.Patterns
---@param t? number|string timeout (default 10s)
---@param opts? provium.MatchOptions
---@return string bytes
---@return integer? index the alternative (a regex or a list)
---@return string? text the match (nil when its start is unknown)
---@return string? ... the captures
function Stream:read_until(pattern, t, opts)
  local line, marked, skip = match_command("read_until", pattern, t, opts)
  local payload, fields = run_match(self, line)
  if not marked then return payload end
  return payload, match_results("read_until", payload, fields, skip)
end

--- As read_until, returning nothing for a string; for a regex or a list,
--- the index of the alternative, the matched text and the captures.
---@param pattern provium.Patterns
---@param t? number|string timeout (default 10s)
---@param opts? provium.MatchOptions
---@return integer? index the alternative (a regex or a list)
---@return string? text the match
---@return string? ... the captures
function Stream:expect(pattern, t, opts)
  local line, marked, skip = match_command("expect", pattern, t, opts)
  local payload, fields = run_match(self, line)
  if not marked then return end
  return match_results("expect", payload, fields, skip)
end

--- Wait as expect does and consume nothing: returns what read_until
--- would (the bytes up to the match end, and for a regex or a list the
--- index, text and captures), the bytes left in place.
---@param pattern provium.Patterns
---@param t? number|string timeout (default 10s)
---@param opts? provium.MatchOptions
---@return string bytes
---@return integer? index the alternative (a regex or a list)
---@return string? text the match
---@return string? ... the captures
function Stream:peek(pattern, t, opts)
  local line, marked, skip = match_command("peek", pattern, t, opts)
  local payload, fields = run_match(self, line)
  if not marked then return payload end
  return payload, match_results("peek", payload, fields, skip)
end

--- Every frame available within t (pending bytes first), as an array of
--- strings; `{}` after close.
---@param t? number|string total time to wait (default 0.5s)
---@return string[] frames
function Stream:drain(t)
  if self._closed then return {} end
  local st, payload = call(self._fd, command("drain", duration(t)))
  if st ~= "ok" then raise(self, st, payload) end
  local frames, i = {}, 1
  while i <= #payload do
    local nl = payload:find("\n", i, true)
    local n = tonumber(payload:sub(i, nl - 1))
    frames[#frames + 1] = payload:sub(nl + 1, nl + n)
    i = nl + n + 1
  end
  return frames
end

--- True once the source ended with nothing pending, or after close.
---@return boolean
function Stream:eof()
  if self._closed then return true end
  local st, payload = call(self._fd, command("eof"))
  if st ~= "ok" then raise(self, st, payload) end
  return payload == "true"
end

--- Close the stream (idempotent); also run by `<close>` variables and the
--- garbage collector (which only lets go of a `keep` stream). A stream
--- from `provium.attach` is left open: only this object lets go of it.
function Stream:close()
  if self._closed then return end
  self._closed = true
  if scope then scope[self] = nil end
  if not self._attached then pcall(call, self._fd, command("close")) end
  self._fd:close()
end
Stream.__close = Stream.close
function Stream:__gc()
  if self._keep and not self._closed then
    self._closed = true
    self._fd:close() -- the stream outlives this process: that is `keep`
    return
  end
  self:close()
end

--- Where the stream was opened: the first test-file frame on the stack.
---@return provium.Site|nil
function Stream:creation_site()
  return self._site and { file = self._site.file, line = self._site.line }
end

--- The stream's id under `streams/`.
---@return string
function Stream:id() return self._id end
--- The stream's directory.
---@return string
function Stream:path() return path("streams", self._id) end
--- `tail_file`, `file_tail_stream`, `fd_stream`, `proc_stdout_stream`,
--- `proc_stderr_stream`, `console`, `bridge_capture` or `nic_capture`.
---@return string
function Stream:kind() return self._kind end
--- The path, handle, `proc#N`, VM name or interface, as `info().detail`.
---@return string
function Stream:detail() return self._detail end
--- The stream's `info` file as a table (`bytes`, `state`, `owner pid`, …).
---@return table<string, string|number>
function Stream:info()
  local text = read_file(path("streams", self._id, "info"))
  if not text then
    if not mounted() then no_mount() end
    error(("%s closed"):format(self._noun), 0)
  end
  return keyvals(text)
end
function Stream:__tostring()
  return stream_name(self) .. " #" .. self._id
end

--- Open a stream: allocate a slot through clone, write the open command
--- (words, then `key=value` options) with the caller's site and test,
--- read the reply. The stream's kind and detail are the daemon's.
local function open_stream(words, opts)
  local site = creation_site()
  local id = read_file(path("clone"))
  if not id then no_mount() end
  id = id:match("^(%d+)")
  local fd = open_ctl(path("streams", id, "ctl"))
  local line = {}
  for i, w in ipairs(words) do
    line[i] = i == 1 and w or quote(w)
  end
  local keys = {}
  for k in pairs(opts) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = opts[k]
    if v == true then
      line[#line + 1] = k
    elseif v ~= false and v ~= nil then
      line[#line + 1] = k .. "=" .. quote(v)
    end
  end
  if opts.site == nil and site then
    line[#line + 1] = "site=" .. quote(site.file .. ":" .. site.line)
  end
  if opts.test == nil and current_test then
    line[#line + 1] = "test=" .. quote(current_test)
  end
  local st, payload = call(fd, table.concat(line, " ") .. "\n")
  if st ~= "ok" then
    -- The slot stays unopened for another try; we will not make one, so
    -- give it back now rather than leave it listed for 30 s.
    fd:close()
    os.remove(path("streams", id))
    error(payload, 0)
  end
  local info = keyvals(read_file(path("streams", id, "info")))
  local kind = info.kind or words[1]
  local s = setmetatable({ _fd = fd, _id = id, _kind = kind,
    _detail = info.detail or "", _site = site, _noun = nouns[kind] or "stream",
    _test = opts.test or current_test, _keep = opts.keep == true }, Stream)
  if scope and not s._keep then scope[s] = true end
  return s
end

--- A stream opened elsewhere (a `keep` stream, `provium open`): ops on its
--- cursor (the one every op of that stream moves) through a ctl file of
--- our own. Closing the object leaves the stream open; close it with
--- `provium.close_stream(id)`.
---@param id string|integer the stream's id under `streams/`
---@return provium.Stream
function M.attach(id)
  id = tostring(id)
  local info, msg = M.stream_info(id)
  if not info then error("provium.attach: " .. msg, 0) end
  local fd = open_ctl(path("streams", id, "ctl"))
  local kind = info.kind or ""
  return setmetatable({ _fd = fd, _id = id, _kind = kind,
    _detail = info.detail or "", _noun = nouns[kind] or "stream",
    _attached = true }, Stream)
end

---@class provium.OpenOptions
---@field keep? boolean outlive this process (until `close`, `rmdir`, `vm del` or unmount)
---@field site? string `FILE:LINE` instead of the caller's test frame
---@field test? string the test name instead of the current one
---@field [string] string|number|boolean any other open option, e.g. `start`, `kind`, `snaplen`

--- Open a stream with any open command of the mount (SPEC §5.1): the
--- building block of the CLI, for what no method covers.
--- `provium.open({"tail_file", "host", "/var/log/dpkg.log"}, {start = "beginning"})`
---@param words string[] the command and its arguments (quoted as needed)
---@param opts? provium.OpenOptions
---@return provium.Stream
function M.open(words, opts)
  check_arg(1, "open", words, "table")
  check_arg(2, "open", opts, "table", true)
  if type(words[1]) ~= "string" then
    error("provium.open: words[1] must be an open command " ..
      "(tail_file, console, capture, ...)", 0)
  end
  return open_stream(words, opts or {})
end

-- ---------------------------------------------------------------------
-- The daemon, its streams and VMs
-- ---------------------------------------------------------------------

--- The daemon's status (the top-level ctl read): version, pid, mount,
--- uptime (s), spool_dir, history_limit, shared, streams, parked,
--- vms = {{name=, state=}...}, captures = {[iface] = count}.
---@return table
function M.status()
  local text = read_file(path("ctl"))
  if not text then no_mount() end
  local t = keyvals(text:gsub("^proviumfs (%S+)\n", "version: %1\n"))
  t.uptime = tonumber((tostring(t.uptime):gsub("s$", ""))) or t.uptime
  t.shared = t.shared == "yes"
  local vms = {}
  for name, state in tostring(t.vms or ""):gmatch("(%S+)%((%a+)%)") do
    vms[#vms + 1] = { name = name, state = state }
  end
  t.vms = vms
  local caps = {}
  for iface, n in text:gmatch("\ncapture:%s*(%S+)%s+(%d+)") do
    caps[unescape(iface)] = tonumber(n)
  end
  t.capture, t.captures = nil, caps
  return t
end

--- Every stream of the mount (all users' that this user may read), as
--- their info tables, by id.
---@return table[]
function M.streams()
  local list = {}
  local ids = core.listdir(path("streams"))
  if not ids or not mounted() then no_mount() end
  for _, id in ipairs(ids) do
    local text = read_file(path("streams", id, "info"))
    if text then list[#list + 1] = keyvals(text) end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

--- One stream's info by id, or nil and a message when there is none.
---@param id string|integer
---@return table|nil info
---@return string|nil err
function M.stream_info(id)
  local text = read_file(path("streams", tostring(id), "info"))
  if text then return keyvals(text) end
  if not mounted() then no_mount() end
  return nil, ("no stream %s under %s/streams"):format(id, mountpoint)
end

--- Close a stream by id (`rmdir streams/<id>`): how a `keep` stream ends.
---@param id string|integer
function M.close_stream(id)
  local ok, msg = os.remove(path("streams", tostring(id)))
  if ok then return end
  if not mounted() then no_mount() end
  error("provium: close stream " .. tostring(id) .. ": " .. tostring(msg), 0)
end

---@class provium.VM
local VM = {}
VM.__index = VM

--- Names of the VMs of the mount, in the order they were added.
---@return string[]
function M.vms()
  local names = {}
  for _, v in ipairs(M.status().vms) do names[#names + 1] = v.name end
  return names
end

local function vm_missing(vm)
  if not mounted() then no_mount() end
  error(("vm `%s`: No such file or directory"):format(vm._name), 0)
end

local function vm_call(vm, ...)
  local st, payload = ctl_call(path("vms", vm._name, "ctl"), command(...))
  if not st then vm_missing(vm) end
  return st, payload
end

local function vm_call_ok(vm, what, ...)
  local st, payload = vm_call(vm, ...)
  if st ~= "ok" then
    error(("%s: %s"):format(what, payload), 0)
  end
  return payload
end

--- A VM known to the daemon: the built-in `host`, or one added with
--- provium.add_vm or `vm add`. Nothing is checked until it is used.
---@param name string
---@return provium.VM
function M.vm(name)
  check_arg(1, "vm", name, "string")
  return setmetatable({ _name = name }, VM)
end

---@class provium.VMOptions
---@field agent string `unix:PATH` or `vsock:CID:PORT`
---@field console? string the console chardev socket
---@field nic? string|string[] host side (tap) of the VM's NICs

--- Register a VM with the daemon (`vm add`).
---@param name string
---@param opts provium.VMOptions
---@return provium.VM
function M.add_vm(name, opts)
  check_arg(1, "add_vm", name, "string")
  check_arg(2, "add_vm", opts, "table")
  check_arg(2, "add_vm", opts.agent, "string")
  local words = { "vm", "add", quote(name), "agent=" .. quote(opts.agent) }
  if opts.console then words[#words + 1] = "console=" .. quote(opts.console) end
  local nics = type(opts.nic) == "table" and opts.nic or { opts.nic }
  for _, nic in ipairs(nics) do words[#words + 1] = "nic=" .. quote(nic) end
  local st, payload = ctl_call(path("ctl"), command(table.unpack(words)))
  if st ~= "ok" then error("provium.add_vm: " .. tostring(payload), 0) end
  return M.vm(name)
end

--- Remove a VM (`vm del`): its streams are closed.
---@param name string
function M.del_vm(name)
  check_arg(1, "del_vm", name, "string")
  local st, payload = ctl_call(path("ctl"), command("vm", "del", quote(name)))
  if st ~= "ok" then error("provium.del_vm: " .. tostring(payload), 0) end
end

---@return string
function VM:name() return self._name end

--- The VM's `info` file as a table (agent_state, agent_os, console, …).
--- Raises when the VM or the mount is missing.
---@return table<string, string|number>
function VM:info()
  local text = read_file(path("vms", self._name, "info"))
  if not text then vm_missing(self) end
  return keyvals(text)
end

local start_words = { ["end"] = "end", beginning = "beginning", start = "start" }

local function start_option(start)
  if start == nil then return nil end
  if type(start) == "string" then
    if not start_words[start] then
      error(('vm:tail_file: opts.start = `%s` (expected "beginning"|"end"|number)')
        :format(start), 0)
    end
    return start
  elseif type(start) == "number" then
    if start ~= start or start == math.huge or start == -math.huge then
      error(('vm:tail_file: opts.start = `%s` (expected "beginning"|"end"|number)')
        :format(fmtnum(start)), 0)
    end
    local n = start < 0 and math.ceil(start) or math.floor(start)
    return string.format("%d", n)
  end
  error(('vm:tail_file: opts.start type %s not supported (expected number or "beginning"/"end")')
    :format(type(start)), 0)
end

---@class provium.TailOptions
---`end` (default): only bytes appended after the open; `beginning`/`start`:
---from byte 0; N: from that offset; -N: N bytes before the current end.
---@field start? "end"|"beginning"|"start"|integer

--- Follow a file in the VM (like `tail -F`).
---@param p string path in the VM
---@param opts? provium.TailOptions
---@return provium.Stream tail
function VM:tail_file(p, opts)
  if type(p) ~= "string" then
    error("vm:tail_file: first arg must be a path string", 0)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("vm:tail_file: second arg must be opts table, got " .. type(opts), 0)
  end
  return open_stream({ "tail_file", self._name, p },
    { start = start_option(opts and opts.start) })
end

-- Files: handles in the VM's agent (SPEC §5.4).

---@class provium.File
local File = {}
File.__index = File

---@class provium.FileOptions
---@field read? boolean
---@field write? boolean
---@field create? boolean
---@field append? boolean
---@field truncate? boolean

--- Open a file in the VM (a handle of its agent).
---@param p string path in the VM
---@param opts? provium.FileOptions default `{read = true}`
---@return provium.File
function VM:open_file(p, opts)
  if type(p) ~= "string" then
    error("vm:open_file: first arg must be a path string", 0)
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
  if not f._h then error("file: file is closed", 0) end
end

--- Read up to n bytes at the file's position ("" at the end).
---@param n? integer default 65536
---@return string
function File:read(n)
  file_live(self)
  local data = vm_call_ok(self._vm, "file:read", "read", self._h,
    tostring(n or 65536))
  self._pos = self._pos + #data
  return data
end

--- Write at the file's position.
---@param data string
---@return provium.File self
function File:write(data)
  file_live(self)
  vm_call_ok(self._vm, "file:write", "write", self._h, quote(data))
  self._pos = self._pos + #data
  return self
end

--- Move the file's position.
---@param off? integer
---@param whence? "set"|"cur"|"end"
---@return integer position
function File:seek(off, whence)
  file_live(self)
  local pos = vm_call_ok(self._vm, "file:seek", "seek", self._h,
    tostring(off or 0), whence or "set")
  self._pos = tonumber(pos:match("%d+")) or self._pos
  return self._pos
end

--- Close the handle (idempotent; also `<close>` and collection).
function File:close()
  if not self._h then return end
  pcall(vm_call, self._vm, "close", self._h)
  self._h = nil
end
File.__close = File.close
File.__gc = File.close

--- The handle's id in the VM's agent (not an OS fd).
---@return integer
function File:fd()
  file_live(self)
  return tonumber(self._h) --[[@as integer]]
end

--- A tail of the file's path from the file's current position.
---@return provium.Stream tail kind `file_tail_stream`
function File:tail_stream()
  file_live(self)
  return open_stream({ "file_tail_stream", self._vm._name, self._path },
    { start = string.format("%d", self._pos) })
end

--- Stream an open handle itself.
---@param f provium.File|integer a File, or a handle id
---@return provium.Stream tail kind `fd_stream`
function VM:fd_stream(f)
  local h
  if getmetatable(f) == File then
    if not f._h then error("vm:fd_stream: file is closed", 0) end
    h = f._h
  elseif math.type(f) == "integer" or (type(f) == "number" and f > 0) then
    h = string.format("%d", f)
  else
    error("vm:fd_stream expected fd or File, got " .. type(f), 0)
  end
  return open_stream({ "fd_stream", self._name, h }, {})
end

-- Processes.

---@class provium.Proc
local Proc = {}
Proc.__index = Proc

---@class provium.ExitStatus
---@field code? integer the exit code, when the process exited
---@field signal? integer the signal that killed it

local function argv_of(cmd, what)
  if type(cmd) == "string" then
    return { "/bin/sh", "-c", cmd }
  elseif type(cmd) == "table" and #cmd > 0 then
    return cmd
  end
  error(what .. ": command must be a string or an argv table", 0)
end

---@class provium.RunOptions
---@field cwd? string
---@field env? table<string, string>

--- Start a process in the VM (in its own process group); its stdout and
--- stderr are recorded from the first byte.
---@param cmd string|string[] a string runs under /bin/sh -c; a table is argv
---@param opts? provium.RunOptions
---@return provium.Proc
function VM:run_async(cmd, opts)
  opts = opts or {}
  if opts.timeout ~= nil then
    error("vm:run_async: `timeout` is not honoured here; pass it to " ..
      "`proc:wait(timeout)` instead", 0)
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

--- The process's stdout, from its first byte.
---@return provium.Stream tail kind `proc_stdout_stream`
function Proc:stdout_stream()
  return open_stream({ "proc_stdout_stream", self._vm._name, self._id }, {})
end

--- The process's stderr, from its first byte.
---@return provium.Stream tail kind `proc_stderr_stream`
function Proc:stderr_stream()
  return open_stream({ "proc_stderr_stream", self._vm._name, self._id }, {})
end

local function exit_status(text)
  local how, n = text:match("^(%a+) (%-?%d+)")
  return { code = how == "exit" and tonumber(n) or nil,
           signal = how == "signal" and tonumber(n) or nil }
end

--- Wait for the process to end. A wait that times out kills the whole
--- process group (as Provium's) and raises
--- `proc:wait: wait timed out after T; the process group was killed`.
---@param t? number|string timeout (default: none)
---@return provium.ExitStatus
function Proc:wait(t)
  if t == 0 then
    error("proc:wait: timeout=0 would SIGKILL the process immediately. " ..
      "Use proc:status() to poll, or pass a small positive timeout " ..
      '(e.g. "100ms").', 0)
  end
  local st, payload = vm_call(self._vm, "wait", self._id, duration(t))
  if st == "timeout" then
    -- As Provium: a wait that times out kills the whole process group
    -- (the process leads its own group), so nothing a test started
    -- outlives the wait. The group may be gone already: ignore that.
    vm_call(self._vm, "kill", self._id, "KILL")
    error("proc:wait: " .. payload .. "; the process group was killed", 0)
  end
  if st ~= "ok" then error("proc:wait: " .. payload, 0) end
  self._status = exit_status(payload)
  return self._status
end

--- Send a signal (default TERM) to the process.
---@param sig? integer|string number or name (`KILL`, `INT`, …)
function Proc:kill(sig)
  vm_call_ok(self._vm, "proc:kill", "kill", self._id,
    sig and tostring(sig) or nil)
end

--- Write to the process's stdin.
---@param data string
function Proc:write(data)
  vm_call_ok(self._vm, "proc:write", "stdin", self._id, quote(data))
end

--- Close the process's stdin.
function Proc:close_stdin()
  vm_call_ok(self._vm, "proc:close_stdin", "stdin_close", self._id)
end

--- The process's id in the VM's agent (the `N` of `procs/N`); the agent
--- reports no OS pid.
---@return integer
function Proc:id() return tonumber(self._id) --[[@as integer]] end

---@class provium.ProcStatus: provium.ExitStatus
---@field running boolean
---@field error? string why the status is unknown (the agent went away)

--- Poll the process without waiting: `{running = true}`, or
--- `{running = false, code = N}` / `{running = false, signal = N}`;
--- the status file's text second.
---@return provium.ProcStatus status
---@return string text `running`, `exit N`, `signal N`, `unknown…`
function Proc:status()
  local text = read_file(path("vms", self._vm._name, "procs", self._id,
    "status"))
  if not text then
    if not mounted() then no_mount() end
    error(("proc:status: proc#%s of vm `%s` is not known (its VM was " ..
      "removed, or it was forgotten)"):format(self._id, self._vm._name), 0)
  end
  text = text:gsub("\n$", "")
  if text == "running" then return { running = true }, text end
  local st = exit_status(text)
  st.running = false
  if not st.code and not st.signal then st.error = text end
  return st, text
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

---@class provium.RunResult
---@field code? integer
---@field signal? integer
---@field stdout string
---@field stderr string

---@class provium.RunWaitOptions: provium.RunOptions
---@field timeout? number|string kill the process group and raise after this long (default 60s)

--- Run a process to completion.
---@param cmd string|string[] a string runs under /bin/sh -c; a table is argv
---@param opts? provium.RunWaitOptions
---@return provium.RunResult
function VM:run(cmd, opts)
  opts = opts or {}
  local timeout = opts.timeout
  local async_opts = { cwd = opts.cwd, env = opts.env }
  local p = self:run_async(cmd, async_opts)
  local out, err = p:stdout_stream(), p:stderr_stream()
  local ok, st = pcall(p.wait, p, timeout or "60s")
  if not ok then
    -- Timed out (the group is killed by wait) or failed: nothing this
    -- call opened stays open, and the error names the timeout.
    out:close()
    err:close()
    local msg = tostring(st):gsub("^proc:wait: wait ", ""):gsub("^proc:wait: ", "")
    error("vm:run: " .. msg, 0)
  end
  return { code = st.code, signal = st.signal,
           stdout = collect(out), stderr = collect(err) }
end

-- Console.

---@class provium.Console
local Console = {}
Console.__index = Console

--- The VM's console (needs `console=` at `vm add`).
---@return provium.Console
function VM:console()
  return setmetatable({ _vm = self }, Console)
end

---@class provium.ConsoleReadOptions
---@field start? "beginning"|"end" `beginning` (default): the whole history, then live

--- A console stream: the whole console history, then live.
---@param opts? provium.ConsoleReadOptions
---@return provium.Stream console kind `console`
function Console:read(opts)
  return open_stream({ "console", self._vm._name },
    { start = opts and opts.start })
end

---@class provium.ConsoleWriteOptions
---@field timeout? number|string bound on the write (seconds or "500ms")

--- Type bytes into the guest's console. `opts.timeout` bounds the call;
--- any other key (Provium's legacy `timeout_ms` too) is an error.
---@param data string
---@param opts? provium.ConsoleWriteOptions
function Console:write(data, opts)
  check_arg(1, "write", data, "string")
  check_arg(2, "write", opts, "table", true)
  local limit
  for k, v in pairs(opts or {}) do
    if k == "timeout_ms" then
      error("console:write: opts.timeout_ms is not supported (use " ..
        '`timeout = "500ms"` or `timeout = 0.5`)', 0)
    elseif k ~= "timeout" then
      error(("console:write: unknown option `%s` (expected timeout)")
        :format(tostring(k)), 0)
    end
    limit = seconds(v)
  end
  local fd, msg, err = core.open(path("vms", self._vm._name, "ctl"), "rw")
  if not fd then
    if not mounted() then no_mount() end
    io_error(msg, err)
  end
  send(fd, command("console_write", quote(data)))
  if limit then
    local deadline = core.now() + limit
    while true do
      local ready, perr, errno = fd:poll(math.max(0, deadline - core.now()))
      if ready then break end
      if ready == nil and errno ~= core.EINTR then io_error(perr, errno) end
      if ready == false then
        fd:close()
        error(("console:write: timed out after %s"):format(
          type(opts.timeout) == "string" and opts.timeout or
          fmtnum(limit) .. "s"), 0)
      end
    end
  end
  local st, payload = read_reply(fd)
  fd:close()
  if st ~= "ok" then error("console:write: " .. payload, 0) end
end

--- Nothing to release (the console belongs to the VM).
function Console:close() end

--- Succeeds when no stream of this VM is live; raises the snapshot
--- refusal of SPEC §7 otherwise.
function VM:quiesce()
  local st, payload = vm_call(self, "quiesce")
  if st ~= "ok" then error(payload, 0) end
end

--- The number of this VM's live streams. Raises when the VM or the mount
--- is missing.
---@return integer
function VM:open_stream_count()
  local text = read_file(path("vms", self._name, "streams"))
  if not text then vm_missing(self) end
  local n = 0
  for line in text:gmatch("[^\n]+") do
    if not line:match("^#") then n = n + 1 end
  end
  return n
end

-- ---------------------------------------------------------------------
-- Captures
-- ---------------------------------------------------------------------

---@class provium.Iface
local Iface = {}
Iface.__index = Iface

local function iface(kind, name)
  check_arg(1, kind, name, "string")
  return setmetatable({ _kind = kind, _name = name }, Iface)
end

--- A host bridge, for captures.
---@param name string
---@return provium.Iface
function M.bridge(name) return iface("bridge", name) end
--- A NIC (a VM's tap), for captures.
---@param name string
---@return provium.Iface
function M.nic(name) return iface("nic", name) end

---@class provium.CaptureOptions
---@field snaplen? integer bytes kept per packet (default 65535)
---@field filter? string a BPF filter

--- A packet capture: a classic pcap savefile, header first, one frame per
--- packet. Needs CAP_NET_RAW.
---@param opts? provium.CaptureOptions
---@return provium.Stream capture kind `bridge_capture` or `nic_capture`
function Iface:capture(opts)
  opts = opts or {}
  return open_stream({ "capture", self._name }, { kind = self._kind,
    snaplen = opts.snaplen and string.format("%d", opts.snaplen) or nil,
    filter = opts.filter })
end

--- Live captures on this interface, from the daemon's status.
---@return integer
function Iface:active_captures()
  return M.status().captures[self._name] or 0
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

--- Run fn as a test scope: streams opened in it and still open at its
--- end are closed and reported (returned as lines
--- `kind(detail) created at file:line (test "name")`, and written to
--- stderr). An error in fn is raised again after the cleanup.
---@param name string the test's name (sent with every open)
---@param fn fun()
---@return string[] leaked
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

--- The same scope as provium.test, under a second name, so that code run
--- by a test runner (which wraps provium.test to count test points) can
--- open a nested scope.
---@param name string
---@param fn fun()
---@return string[] leaked
M.scope = M.test

--- The name of the innermost provium.test running, or nil.
---@return string|nil
function M.current_test() return current_test end

return M
