-- The storage part of the seed's persistence demo, for real: every number
-- printed here was just written to RocksDB and read back.
--   make demo        (runs this in build/demo)
local synaptic = require "synaptic"

local dir = arg and arg[1] or "./neural_storage"
os.execute("rm -rf '" .. dir .. "' '" .. dir .. "-backups' '" .. dir .. "-restored' '" .. dir .. "-runtime'")

local function section(title) print(("\n== %s %s"):format(title, ("="):rep(60 - #title))) end

-- Trained-like weights: Gaussian, sigma 0.05.
local function gaussian(n, seed)
  local s, w = seed, synaptic.floats(n)
  for i = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    local u1 = (s + 1) / 2147483649
    s = (s * 1103515245 + 12345) % 2147483648
    w[i] = 0.05 * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * s / 2147483648)
  end
  return w
end

local experts = {
  reasoning = { 64, 128, 64, 32 },  coding = { 96, 192, 128, 64 },
  language = { 128, 256, 128, 64 }, mathematics = { 80, 160, 80, 40 },
  tool_use = { 48, 96, 48, 24 },    context = { 32, 64, 32, 16 },
}
local names = {}
for name in pairs(experts) do names[#names + 1] = name end
table.sort(names)

section("1. Basic storage")
do
  local store <close> = assert(synaptic.open(dir))
  print(store)
  local total = 0
  for e, name in ipairs(names) do
    local sizes = experts[name]
    local params = 0
    for layer = 1, #sizes - 1 do
      local n = sizes[layer] * sizes[layer + 1]
      local v = store:put_weights(name, layer, gaussian(n, e * 100 + layer),
                                  gaussian(sizes[layer + 1], e), { shape = { sizes[layer + 1], sizes[layer] } })
      params = params + n + sizes[layer + 1]
      assert(v == 1)
    end
    store:put_config { expert_id = name, domain = name, parameter_count = params,
                       learning_rate = 0.01, architecture = sizes }
    total = total + params
    print(("  %-12s %6d parameters in %d layers"):format(name, params, #sizes - 1))
  end
  local st = store:storage_stats()
  print(("  %d parameters, %d weight records; stored %.1f%% of the raw bytes (codec: shuffle)")
        :format(total, st.weight_records, 100 * st.compression_ratio))
  store:put_state("system_version", "0.1.0")
  for i = 1, 5 do store:record_metric("response_time_ms", 10 + i, 1000 + i) end
end

section("2. Neural persistence across a restart")
do
  local store <close> = assert(synaptic.open(dir))
  local w, b, info = store:get_weights("coding", 1)
  print(("  coding layer 1 after reopening: %s"):format(w))
  print(("  version %d, %d raw bytes stored in %d (%s), origin %s")
        :format(info.version, info.raw_bytes, info.stored_bytes, info.codec, info.origin))
  local cfg = store:get_config("coding")
  print(("  config: domain %s, %d parameters, architecture %s")
        :format(cfg.domain, cfg.parameter_count, table.concat(cfg.architecture, "-")))

  local cp = store:create_checkpoint {
    system_version = store:get_state("system_version"),
    expert_states = { { expert_id = "coding", activation_count = 42, success_rate = 0.9 } },
    global_metrics = { total_requests = 42, uptime = 1.5 },
  }
  print("  checkpoint " .. cp .. " pins " .. #store:get_checkpoint(cp).pins .. " layers")
  -- training moves on...
  store:put_weights("coding", 1, gaussian(#w, 999), b)
  print(("  after training: coding layer 1 is version %d"):format(select(3, store:get_weights("coding", 1)).version))
  assert(store:restore_checkpoint(cp))
  local restored, _, rinfo = store:get_weights("coding", 1)
  print(("  restored checkpoint: version %d, identical to the checkpointed weights: %s")
        :format(rinfo.version, tostring(restored == w)))
  local m = store:metrics("response_time_ms")
  print(("  %d response-time samples, last %.0f ms"):format(#m, m[#m].value))
end

section("3. The persistent runtime")
do
  local queries = {
    "How does AI work? Explain the reason.",
    "Implement a function to sort a list and debug it",
    "What is 17 * 23 + 4?",
    "Use the search tool to run this query",
    "Translate 'good morning' into French",
    "Summarise our previous conversation. Then continue.",
  }
  local answers = {}
  do
    local rt <close> = assert(synaptic.runtime(dir .. "-runtime", { seed = 42 }))
    for i, q in ipairs(queries) do
      local response, d = rt:process(q)
      answers[i] = response
      print(("  %-52s -> %s, %s (%.2f ms)"):format(q, d.domains[1], d.domains[2], d.latency * 1000))
    end
    local q = "Tell me something about whales"
    local _, d = rt:process(q)
    local first, last = rt:train(q, "reasoning")
    for _ = 1, 30 do last = rt:train(q, "reasoning") end
    local _, d2 = rt:process(q)
    print(("  '%s' went to %s; 31 training steps toward reasoning (loss %.3f -> %.3f);"
           .. " now it goes to %s"):format(q, d.domains[1], first, last, d2.domains[1]))
    queries[#queries + 1] = q
    for i, query in ipairs(queries) do answers[i] = rt:process(query) end
    local id = rt:save_state("demo-1")
    print("  saved checkpoint " .. id)
  end
  local rt <close> = assert(synaptic.runtime(dir .. "-runtime"))
  local same = 0
  for i, q in ipairs(queries) do if rt:process(q) == answers[i] then same = same + 1 end end
  print(("  after a restart: %d of %d answers identical, byte for byte"):format(same, #queries))
  local report = tostring(rt:stats()):gsub("\n", "\n  ")
  print("  " .. report)
end

section("4. P2P configuration and sync")
do
  local cfg = synaptic.p2p_config {
    node_id = "neural_node_001", listen = "tcp://127.0.0.1:0",
    enable_weight_sync = true, enable_config_sync = true, enable_checkpoint_sync = true,
  }
  print(("  node %s: conflicts by %s, heartbeat every %gs, peers dead after %gs, max %d peers")
        :format(cfg.node_id, cfg.conflict_resolution, cfg.heartbeat_interval_seconds,
                cfg.peer_timeout_seconds, cfg.max_peers))
  -- two stores, two transport-free engines; we carry their messages ourselves
  local a <close> = assert(synaptic.open(dir .. "-peer-a"))
  local b <close> = assert(synaptic.open(dir .. "-peer-b"))
  local ea = synaptic.sync_engine(a, { node_id = "a" })
  local eb = synaptic.sync_engine(b, { node_id = "b" })
  ea:add_peer("b"); eb:add_peer("a")
  a:put_weights("coding", 1, gaussian(1024, 7))
  b:put_weights("coding", 1, gaussian(1024, 8))      -- a concurrent write: a conflict
  local messages = 0
  for t = 0, 5 do
    ea:tick(t); eb:tick(t)
    for _, m in ipairs(ea:outbox()) do eb:receive("a", m.bytes); messages = messages + 1 end
    for _, m in ipairs(eb:outbox()) do ea:receive("b", m.bytes); messages = messages + 1 end
  end
  local wa, _, ia = a:get_weights("coding", 1)
  local wb = b:get_weights("coding", 1)
  print(("  after %d messages both stores hold the same coding layer 1: %s (winner from %s);"
         .. " the loser is kept: %d conflict version(s)")
        :format(messages, tostring(wa == wb), ia.origin == a:origin() and "a" or "b",
                #a:conflicts("coding", 1)))
end

section("5. Maintenance: verify, compact, backup, restore")
do
  local store <close> = assert(synaptic.open(dir))
  local ok, report = store:verify()
  print(("  verify: %s, %d records checked, %d problems"):format(tostring(ok), report.records, #report.problems))
  assert(store:compact())
  local bytes, files = store:size_info()
  print(("  after compaction: %d bytes in %d files"):format(bytes, files))
  local id = assert(store:backup(dir .. "-backups"))
  print(("  backup %d written to %s"):format(id, dir .. "-backups"))
  store:close()
  assert(synaptic.restore_backup(dir .. "-backups", dir .. "-restored"))
  local copy <close> = assert(synaptic.open(dir .. "-restored", { read_only = true }))
  print(("  restored copy lists experts: %s"):format(table.concat(copy:list_experts(), ", ")))
  local a = copy:get_weights("language", 2)
  print(("  language layer 2 in the copy: %d values, verify: %s"):format(#a, tostring((copy:verify()))))
end
print("\nDone. Data is in " .. dir)
