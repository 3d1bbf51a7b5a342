-- The three example patterns of the Provium streams page, on the host VM.
local provium = require "provium"
local u = require "util"
local host = provium.vm("host")

provium.test("wait for a log line", function()
  local p = u.tmpfile("starting\n")
  local f <close> = host:open_file(p, { read = true })
  local s <close> = f:tail_stream()
  host:run_async({ "/bin/sh", "-c", "echo 'service ready' >> " .. p })
  s:expect("ready", "30s")
end)

provium.test("race a process against a timeout", function()
  local p = host:run_async("echo booting; echo listening on 8080; sleep 30")
  local out <close> = p:stdout_stream()
  out:expect("listening", "10s")
  u.eq(out:next("5s"), " on 8080\n", "rest of the line is pending")
  p:kill()
  local st = p:wait("10s")
  assert(st.signal ~= nil, "killed by a signal")
end)

-- The daemon (and so the host VM) runs in a network namespace of the
-- test's own (run.sh): its `lo` carries only the traffic made here.
provium.test("drain a capture into a pcap file tcpdump reads", function()
  local cap <close> = provium.bridge("lo"):capture()
  u.eq(provium.bridge("lo"):active_captures(), 1, "counted")
  local r = host:run({ "ping", "-c", "3", "-i", "0.2", "127.0.0.1" })
  u.eq(r.code, 0, "ping " .. r.stderr)
  local frames = cap:drain("1s")
  u.eq(#frames, 7, "the header and 6 packets")
  u.eq(#frames[1], 24, "pcap global header first")
  local path = u.tmpfile(table.concat(frames))
  local tcpdump = io.popen("tcpdump -nr " .. path .. " 2>/dev/null")
  local text = tcpdump:read("a")
  tcpdump:close()
  local _, requests = text:gsub("ICMP echo request", "")
  local _, replies = text:gsub("ICMP echo reply", "")
  u.eq(requests, 3, "echo requests in:\n" .. text)
  u.eq(replies, 3, "echo replies in:\n" .. text)
end)
