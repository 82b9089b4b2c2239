-- Child process for 38-wal_damage_spec.lua:
--   lua5.4 spec/support/wal_writer.lua DBPATH N
-- writes state k1..kN (M.value(i)) and exits without closing the store, as
-- a killed process would: the writes are in the WAL only.
local M = {}
function M.value(i) return ("value %d "):format(i) .. string.rep("w", 150) end
if ... == "wal_writer" then return M end

local synaptic = require "synaptic"
local s = assert(synaptic.open(arg[1], { write_buffer_mb = 64 }))
for i = 1, tonumber(arg[2]) do assert(s:put_state("k" .. i, M.value(i))) end
io.stdout:flush()
os.exit(0, false)   -- no close, no flush: what a SIGKILL leaves
