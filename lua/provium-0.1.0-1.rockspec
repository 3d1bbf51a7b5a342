-- The Lua library as a rock: `luarocks --lua-version 5.4 make
-- lua/provium-0.1.0-1.rockspec` from the top of the source tree builds
-- provium.core and installs both modules
-- (Lua 5.4 headers needed: Debian liblua5.4-dev). The daemon, the agent
-- and the CLI come from `cmake --install` or the Debian package
-- (docs/install.md); this rock is the library alone.
rockspec_format = "3.0"
package = "provium"
version = "0.1.0-1"
source = {
   url = "git+file:///provium", -- builds from a checkout: luarocks make
   tag = "v0.1.0",
}
description = {
   summary = "Lua client of Provium streams: byte streams of test VMs as files",
   detailed = [[
Provium streams turns every flow of bytes out of a test VM (guest files
and process output, the console, packet captures) into files under a
FUSE mount served by proviumfs. This library opens and reads those
streams from Lua tests: next, read_until, expect, drain, eof, close,
creation_site; processes, files, consoles and captures.]],
   license = "unspecified",
   labels = { "testing", "fuse", "qemu" },
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
-- A "command" build, not "builtin": builtin copies any top-level lua/
-- directory into the tree whole, and ours holds more than modules.
build = {
   type = "command",
   build_command = "mkdir -p build/rock && $(CC) $(CFLAGS) -I$(LUA_INCDIR) " ..
      "$(LIBFLAG) -o build/rock/core.so lua/core.c",
   install = {
      lua = { provium = "lua/provium.lua" },
      lib = { ["provium.core"] = "build/rock/core.so" },
      bin = { ["provium-test"] = "lua/provium-test" },
   },
}
