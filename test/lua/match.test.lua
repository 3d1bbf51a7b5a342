-- Matching (SPEC §9.3): provium.re, lists of patterns, peek, skip=printk,
-- captures, and the messages of bad patterns and timeouts, on Tail
-- streams of the host VM.
local provium = require "provium"
local u = require "util"
local host = provium.vm("host")

local REC = "[    3.141592] random: crng init done\r\n"

local function tail(content)
  return host:tail_file(u.tmpfile(content), { start = "beginning" })
end

provium.test("a string is a literal, as Provium: results as before", function()
  local t <close> = tail("boot: READY 42 ok\nrest")
  u.eq(select("#", t:read_until("READY", "5s")), 1, "one result")
  u.eq(select("#", t:peek(" ok", "5s")), 1, "peek: one result")
  u.eq(select("#", t:expect("ok", "5s")), 0, "expect: none")
  u.eq(t:next(0), "\nrest", "pending")
end)

provium.test("a regex returns the bytes, index, text and captures", function()
  local t <close> = tail("boot: READY 42 ok\nrest")
  local bytes, i, text, n, x = t:read_until(provium.re("READY ([0-9]+) (x)?ok"),
    "5s")
  u.eq(bytes, "boot: READY 42 ok", "bytes")
  u.eq(i, 1, "index")
  u.eq(text, "READY 42 ok", "text")
  u.eq(n, "42", "capture 1")
  u.eq(x, nil, "a group that took no part")
  u.eq(t:next(0), "\nrest", "the rest is pending")
end)

provium.test("a list: the earliest end wins, then the lower index", function()
  local t <close> = tail("say hello, world")
  local bytes, i, text = t:peek({ "lo", "hello" }, "5s")
  u.eq(bytes, "say hello", "bytes")
  u.eq(i, 1, "the first listed of two ending together")
  u.eq(text, "lo", "its text")
  _, i, text = t:peek({ "hello", "lo" }, "5s")
  u.eq(i, 1, "reversed")
  u.eq(text, "hello", "reversed text")
  _, i, text = t:peek({ "world", provium.re("o,") }, "5s")
  u.eq(i, 2, "the earliest end, whatever the index")
  u.eq(text, "o,", "regex text")
  -- expect returns the index, the text and the captures.
  local j, mt, c = t:expect({ "zzz", provium.re("h(el+)o") }, "5s")
  u.eq(j, 2, "expect index")
  u.eq(mt, "hello", "expect text")
  u.eq(c, "ell", "expect capture")
  u.eq(t:next(0), ", world", "consumed up to the match")
end)

provium.test("peek consumes nothing; read_until then returns the same", function()
  local p = u.tmpfile("a")
  local t <close> = host:tail_file(p, { start = "beginning" })
  u.append(p, "b READY")
  u.append(p, " 7 ok tail")
  local re = provium.re("READY [0-9]+ ok")
  local a, ai = t:peek(re, "5s")
  local b, bi = t:read_until(re, "5s")
  u.eq(a, "ab READY 7 ok", "peek")
  u.eq(b, a, "read_until after peek")
  u.eq(ai, bi, "same alternative")
  u.eq(t:next(0), " tail", "pending after the match")
end)

provium.test("skip = printk: a kernel record spliced into the prompt", function()
  local t <close> = tail("Debian\r\nlog" .. REC .. "in: ")
  local bytes = t:read_until("login:", "5s", { skip = "printk" })
  u.eq(bytes, "Debian\r\nlog" .. REC .. "in:", "the record is consumed")
  local t2 <close> = tail("v=12" .. REC .. "34;")
  local _, _, text, num = t2:read_until(provium.re("v=([0-9]+);"), "5s",
    { skip = "printk" })
  u.eq(text, "v=1234;", "the text the patterns saw")
  u.eq(num, "1234", "captures too")
  -- Without it, the record breaks the prompt.
  local t3 <close> = tail("log" .. REC .. "in:")
  u.raises("expect timed out waiting for `login:`", t3.expect, t3, "login:",
    "100ms")
  t3:expect("login:", "5s", { skip = "printk" })
  -- A real newline is never bridged.
  local t4 <close> = tail("log\r\n" .. REC .. "in:")
  u.raises("expect timed out waiting for `login:`", t4.expect, t4, "login:",
    "100ms", { skip = "printk" })
end)

provium.test("provium.strip_printk", function()
  u.eq(provium.strip_printk("a[ 1.5] x\r\nb[12.5]c"), "ab", "records")
  u.eq(provium.strip_printk("[ 1] no[1.] no[a.1] no"), "[ 1] no[1.] no[a.1] no",
    "not records")
  u.eq(provium.strip_printk("x[" .. ("1"):rep(13) .. ".1] y\n"),
    "x[" .. ("1"):rep(13) .. ".1] y\n", "13 digits: not a record")
end)

provium.test("a marked form always sends its timeout", function()
  -- `expect -ex "5"` alone would be today's literal `-ex` waiting 5 s.
  local t <close> = tail("x5y")
  local i, text = t:expect({ "5" })
  u.eq(i, 1, "index")
  u.eq(text, "5", "the literal 5")
end)

provium.test("regex objects: flags, checks, messages", function()
  u.eq(tostring(provium.re("a.b", "si")), "regex `a.b` (flags is)",
    "flags in imsx order")
  u.eq(provium.re("x").flags, "", "no flags")
  u.raises("unknown regex flag `q` (expected i, m, s or x)", provium.re, "a",
    "iq")
  u.raises("regex `a\\x00b`: contains a NUL byte (write it as \\x00)",
    provium.re, "a\0b")
  u.raises("regex `" .. ("a"):rep(64) .. "...`: too long (5000 bytes, at most 4096)",
    provium.re, ("a"):rep(5000))
  u.raises("bad argument #1 to 're' (string expected, got number)", provium.re, 1)
  local t <close> = tail("abc")
  -- The daemon's messages for what only it can check.
  u.raises("expect: regex `ab(c`: missing closing parenthesis at offset 4",
    t.expect, t, provium.re("ab(c"), "1s")
  u.raises("read_until: pattern 2: regex `(a)\\\\1`: back-reference at " ..
    "offset 3 cannot be matched in a stream", t.read_until, t,
    { "x", provium.re("(a)\\1") }, "1s")
  u.raises("peek: regex `a*`: can match the empty string", t.peek, t,
    provium.re("a*"), "1s")
  -- Arguments.
  u.raises("bad argument #1 to 'expect' (a pattern or a non-empty list",
    t.expect, t, {}, "1s")
  u.raises("bad argument #1 to 'expect' (item 2: string or provium.re " ..
    "expected, got number)", t.expect, t, { "a", 2 }, "1s")
  u.raises("bad argument #1 to 'peek' (string, provium.re or list expected, " ..
    "got no value)", t.peek, t, nil)
  u.raises("expect: unknown option `skp` (expected skip)", t.expect, t, "a",
    "1s", { skp = "printk" })
  u.raises('expect: opts.skip = `all` (expected "printk" or "none")',
    t.expect, t, "a", "1s", { skip = "all" })
  u.eq(t:next(0), "abc", "nothing was consumed by the refusals")
end)

provium.test("timeouts of lists and regexes explain themselves", function()
  local t <close> = tail("pass logi\r\n")
  local e = u.raises("expect timed out waiting for one of `login:`, regex " ..
    "`Password: *$` (flags i), `# `; timeout 100ms; last bytes seen: " ..
    "`pass logi\\r\\n`; 11 bytes scanned; closest: `logi` of `login:` " ..
    "then `\\r\\n`", t.expect, t,
    { "login:", provium.re("Password: *$", "i"), "# " }, "100ms")
  u.eq(e:find("\n", 1, true), nil, "one line")
  u.raises("read_until timed out waiting for regex `READY [0-9]+ ok`; " ..
    "timeout 50ms", t.read_until, t, provium.re("READY [0-9]+ ok"), 0.05)
  u.eq(t:next(0), "pass logi\r\n", "nothing consumed")
end)

provium.test("after close: matching raises `stream closed`", function()
  local t = tail("x")
  t:close()
  u.raises("stream closed", t.peek, t, "x")
  u.raises("stream closed", t.read_until, t, { provium.re("x") })
end)
