-- Child process for the crash test in 30-durability_spec.lua.
--
--   lua5.4 spec/support/crash_writer.lua DBPATH [START [SYNC]]
--
-- Prints its pid on the first line, then writes weights forever (until it is
-- killed with SIGKILL, or a safety limit runs out) and after each write that
-- put_weights acknowledged prints "ack <layer> <version> <seq>", flushed at
-- once. The values of write number seq are crash_writer.values(seq), which
-- the parent computes the same way.
local M = {}

M.EXPERT = "crash"
M.LAYERS = 6

-- Deterministic, distinct per seq; sizes alternate between values small
-- enough to live in SST files and large enough for blob files.
function M.count(seq)
  return 200 + (seq % 4) * 900
end

function M.values(seq)
  local n = M.count(seq)
  local t = {}
  local x = (seq * 2654435761) % 4294967296
  for j = 1, n do
    x = (x * 1664525 + 1013904223) % 4294967296
    t[j] = (x / 4294967296 - 0.5) * 0.2 + seq * 1e-3
  end
  return t
end

function M.bias(seq)
  return { seq, -seq, seq * 0.5 }
end

if ... == "crash_writer" then return M end   -- required as a module

local db, start, sync = arg[1], tonumber(arg[2] or "1"), arg[3] == "sync"
assert(db, "usage: crash_writer.lua DBPATH [START [sync]]")

-- our own pid: the first field of /proc/self/stat read by this process
local stat = assert(io.open("/proc/self/stat"))
local pid = stat:read("n")
stat:close()
io.stdout:write(string.format("%d\n", pid))
io.stdout:flush()

local synaptic = require "synaptic"
local store = assert(synaptic.open(db, { sync_writes = sync }))
local deadline = os.time() + 30   -- never outlive a parent that forgot us

local seq = start
while os.time() < deadline do
  local layer = seq % M.LAYERS
  local version = store:put_weights(M.EXPERT, layer, M.values(seq), M.bias(seq))
  io.stdout:write(string.format("ack %d %d %d\n", layer, version, seq))
  io.stdout:flush()
  seq = seq + 1
end
store:close()
