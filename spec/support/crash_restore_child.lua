-- Child process for 39-crash_restore_salvage_spec.lua: runs one restore or
-- one salvage, to be SIGKILLed part-way through.
--
--   lua5.4 spec/support/crash_restore_child.lua restore BACKUP_DIR TARGET
--   lua5.4 spec/support/crash_restore_child.lua salvage SOURCE OUT
--
-- Prints its pid, then "go" just before the call (so the parent's delay is
-- measured from the start of the work, not from Lua and RocksDB loading),
-- then "done ok" or "done nil <message>" if it was not killed first.
local synaptic = require "synaptic"

local mode, a, b = arg[1], arg[2], arg[3]
assert((mode == "restore" or mode == "salvage") and a and b,
  "usage: crash_restore_child.lua restore|salvage FROM TO")

-- our own pid: the first field of /proc/self/stat read by this process
local stat = assert(io.open("/proc/self/stat"))
local pid = stat:read("n")
stat:close()
io.stdout:write(("%d\ngo\n"):format(pid))
io.stdout:flush()

local ok, msg
if mode == "restore" then
  ok, msg = synaptic.restore_backup(a, b, { force = true })
else
  ok, msg = synaptic.salvage(a, b)
end
io.stdout:write(("done %s %s\n"):format(tostring(ok), ok == nil and tostring(msg) or ""))
io.stdout:flush()
