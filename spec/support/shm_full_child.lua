-- Child process for 23-info_log_crash_spec.lua:
--   lua5.4 spec/support/shm_full_child.lua DBPATH FILLFILE N
-- opens a store (its info LOG goes to /dev/shm), then fills the filesystem
-- FILLFILE is on until a write fails, then puts N layers of 64 KiB (each
-- 1 MiB write buffer flushed several times over: RocksDB's flush and
-- compaction would log each), closes and prints "done N". A writer that
-- RocksDB aborts prints nothing.
local synaptic = require "synaptic"
local db, fill, n = arg[1], arg[2], tonumber(arg[3])
local s = assert(synaptic.open(db, { write_buffer_mb = 1 }))
local f = assert(io.open(fill, "wb"))
local chunk = string.rep("x", 65536)
while f:write(chunk) and f:flush() do end
f:close()
local w = synaptic.floats(16384)
for i = 1, n do
  w[1] = i
  assert(s:put_weights("e", i % 8, w))
end
s:close()
io.write("done ", n, "\n")
