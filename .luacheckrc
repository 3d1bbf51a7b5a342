-- luacheck (Debian lua-check) configuration: the library, the runner and
-- the CLI are kept clean (test/install/lua.sh checks them in CI).
std = "lua54"
max_line_length = 100
-- Methods keep `self` even when they do not use it (Console:close()).
self = false
files["lua/provium-test"] = { std = "lua54" }
files["contrib/provium"] = { std = "lua54" }
