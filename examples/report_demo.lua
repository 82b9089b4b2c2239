-- A store worth a report: three experts with a few versions each, metrics
-- over an hour, checkpoints, and a conflict kept after two replicas wrote
-- the same layer concurrently. Writes DIR/store, DIR/peer and
-- DIR/node-stats.json (the shape `synaptic serve --json` prints at exit).
--   make report-check   (runs this, then `synaptic report`, then Chromium)
local synaptic = require "synaptic"
local cjson = require "cjson"

local dir = assert(arg and arg[1], "usage: lua report_demo.lua DIR")
os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'")

local function weights(n, seed)
  local s, w = seed, synaptic.floats(n)
  for i = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    w[i] = (s / 2147483648 - 0.5) * 0.1
  end
  return w
end

local a = assert(synaptic.open(dir .. "/store"))
local b = assert(synaptic.open(dir .. "/peer"))
local ea = synaptic.sync_engine(a, { node_id = "A" })
local eb = synaptic.sync_engine(b, { node_id = "B" })
ea:add_peer("B"); eb:add_peer("A")

local experts = { coding = { 96, 192, 64 }, reasoning = { 64, 128, 32 }, context = { 32, 64, 16 } }
local seed = 1
for id, sizes in pairs(experts) do
  local params = 0
  for layer = 1, #sizes - 1 do
    local n = sizes[layer] * sizes[layer + 1]
    for _ = 1, layer + 1 do   -- a few versions, more for deeper layers
      seed = seed + 1
      a:put_weights(id, layer, weights(n, seed), weights(sizes[layer + 1], seed + 7),
                    { shape = { sizes[layer + 1], sizes[layer] } })
    end
    params = params + n + sizes[layer + 1]
  end
  a:put_config { expert_id = id, domain = id, parameter_count = params, learning_rate = 0.01,
                 architecture = sizes }
end

-- an hour of metrics, one sample a minute
local t0 = synaptic.now() - 3600
for i = 0, 59 do
  local t = t0 + 60 * i
  a:record_metric("loss", 2.5 * math.exp(-i / 15) + 0.05 * math.sin(i), t)
  a:record_metric("response_time_ms", 12 + 4 * math.sin(i / 5) + (i % 7), t)
  if i % 5 == 0 then a:record_metric("success_rate", 0.5 + 0.45 * (1 - math.exp(-i / 20)), t) end
end

for v = 1, 3 do
  a:create_checkpoint { system_version = "v" .. v,
                        global_metrics = { total_requests = 100 * v, uptime = 600 * v } }
end

-- replicate, then write the same layer and config on both sides unseen
local function exchange(from)
  for t = from, from + 3 do
    ea:tick(t); eb:tick(t)
    for _ = 1, 10 do
      for _, m in ipairs(ea:outbox()) do eb:receive("A", m.bytes) end
      for _, m in ipairs(eb:outbox()) do ea:receive("B", m.bytes) end
    end
  end
end
exchange(1)
a:put_weights("context", 1, weights(32 * 64, 900), weights(64, 901), { shape = { 64, 32 } })
b:put_weights("context", 1, weights(32 * 64, 902), weights(64, 903), { shape = { 64, 32 } })
b:put_config { expert_id = "context", domain = "context-b", parameter_count = 3152,
               learning_rate = 0.02, architecture = { 32, 64, 16 } }
a:put_config { expert_id = "context", domain = "context-a", parameter_count = 3152,
               learning_rate = 0.03, architecture = { 32, 64, 16 } }
exchange(10)
a:create_checkpoint { system_version = "v4-after-sync" }

local f = assert(io.open(dir .. "/node-stats.json", "w"))
f:write(cjson.encode { node_id = "A", address = "tcp://127.0.0.1:7000", stats = ea:stats(), peers = ea:peers() }, "\n")
f:close()
print(("report demo: %d conflicts on context/1, %d on its config"):format(
  #a:conflicts("context", 1), #a:conflicts("context")))
ea:close(); eb:close(); a:close(); b:close()
