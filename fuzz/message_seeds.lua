-- Writes real P2P messages (one of each kind) into a seed directory for
-- fuzz/fuzz_message.c: usage lua5.4 fuzz/message_seeds.lua OUTDIR SCRATCH
local s = require "synaptic"
local out, scratch = arg[1], arg[2]
os.execute("rm -rf '" .. scratch .. "' && mkdir -p '" .. scratch .. "'")
local a = assert(s.open(scratch .. "/a", { write_buffer_mb = 1, cache_mb = 1 }))
local b = assert(s.open(scratch .. "/b", { write_buffer_mb = 1, cache_mb = 1 }))
-- chunk_bytes at its minimum, so a 4 KiB layer travels as chunk messages too
local ea = s.sync_engine(a, { node_id = "A", chunk_bytes = 1024 })
local eb = s.sync_engine(b, { node_id = "B" })
ea:add_peer("B"); eb:add_peer("A")
-- heartbeats name dialable peers (discovery): A advertises itself, and C,
-- whose own heartbeat told A where C listens
local c = assert(s.open(scratch .. "/c", { write_buffer_mb = 1, cache_mb = 1 }))
local ec = s.sync_engine(c, { node_id = "C" })
ec:advertise("tcp://127.0.0.1:7001", ("c"):rep(40))
ea:advertise("tcp://127.0.0.1:7000", ("a"):rep(40))
ec:add_peer("A"); ea:add_peer("C")
ec:tick(0)
for _, m in ipairs(ec:outbox()) do ea:receive("C", m.bytes) end
a:put_config { expert_id = "x", domain = "d", parameter_count = 1, learning_rate = 0.1, architecture = { 1 } }
ea:tick(0)
a:put_weights("x", 0, { 1, 2, 3 }, { 0.5 })
local big = {}
for i = 1, 1000 do big[i] = math.sin(i) * 0.05 end
a:put_weights("x", 1, big, {})
a:create_checkpoint {}
ea:tick(1)
local n = 0
local function save(bytes)
  n = n + 1
  local f = assert(io.open(("%s/msg%02d"):format(out, n), "wb"))
  f:write(bytes)
  f:close()
  -- the same message through the NATS transport's sealed envelope
  -- (fuzz_message.c: 0xE5, then 0 = untouched)
  f = assert(io.open(("%s/sealed%02d"):format(out, n), "wb"))
  f:write("\xE5\0", bytes)
  f:close()
end
for _, m in ipairs(ea:outbox()) do save(m.bytes); eb:receive("A", m.bytes) end
eb:tick(2)
for _, m in ipairs(eb:outbox()) do save(m.bytes) end
print(("message seeds: %d written to %s"):format(n, out))
