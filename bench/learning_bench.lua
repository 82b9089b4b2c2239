-- Learning in a mesh (make bench): real runtimes, each on its own store
-- with a transport-free sync engine, a full mesh synced after every step
-- (every message delivered, in a fixed order, until the engines agree),
-- under each merge rule, as ratios to one runtime doing the same work:
--   same data       N runtimes train one query: router norm and unrelated
--                   (cue-routed) queries still routed as before, vs N = 1
--   different data  runtime i trains query i: rounds until every runtime
--                   routes all N, vs one runtime training them in turn
--   conflict        half the mesh trains a query toward one expert, half
--                   toward another, 5 local steps a sync: top-1 flips and
--                   router norm, vs one runtime training toward the first
--   restore         two nodes restore one checkpoint at once: do both end
--                   on its exact bytes?
-- Every row also checks the nodes are byte-identical after every sync.
-- Printed, never asserted. BENCH_QUICK=1 shortens the rows.
local synaptic = require "synaptic"

local quick = os.getenv("BENCH_QUICK") == "1"
local U = dofile(((arg and arg[0] or ""):match("^(.*[/\\])") or "./") .. "util.lua")
local tmpdir = U.tmpdir

local RULES = require("synaptic.core").p2p_limits.merge_rules
local DOMAINS = { "reasoning", "coding", "language", "mathematics", "tool_use", "context" }
-- words no keyword cue knows: only training routes them
local WORDS = { "zebra", "lantern", "quartz", "velvet", "harbor", "cactus", "violin", "meadow", "pepper",
                "glacier", "saddle", "orbit", "tundra", "marble", "falcon", "ribbon", "canyon", "walnut" }
local function nonsense(i)
  local w = {}
  for k = 0, 3 do w[#w + 1] = WORDS[(i * 5 + k * 7) % #WORDS + 1] end
  return table.concat(w, " ") .. " " .. i
end
-- queries the keyword cues route: training one query must not lose them
local UNRELATED = {
  "Why does the sky look blue? Explain the reason.",
  "Implement a function to debug this program",
  "What is 12 * 7 + 3 = ?",
  "Use the tool to run and execute the script",
  "Translate this sentence into another language",
  "Summarise the context of our previous conversation. Then continue.",
  "Calculate the integral of this equation",
  "Compile the code and fix the bug in the class",
}

print("\n7. learning in a mesh — merge rules against one runtime")
print(("="):rep(60))

-- One seed store every runtime starts from (as a mesh seeded from one machine).
local SEED_DIR = tmpdir()
assert(synaptic.runtime(SEED_DIR .. "/seed", { seed = 7 })):close()

local Mesh = {}
Mesh.__index = Mesh

local function mesh(n, rule, lr)
  local dir = tmpdir()
  local m = setmetatable({ n = n, rts = {}, engines = {}, t = 0, dir = dir, identical = true }, Mesh)
  for i = 1, n do
    os.execute(("cp -r '%s/seed' '%s/r%d'"):format(SEED_DIR, dir, i))
    m.rts[i] = assert(synaptic.runtime(("%s/r%d"):format(dir, i),
      { seed = 7, auto_save_interval = 1e9, max_weight_versions = 0, learning_rate = lr, backup_enabled = false }))
    if n > 1 then
      m.engines[i] = synaptic.sync_engine(m.rts[i].store, {
        node_id = "n" .. i, conflict_resolution = "merge", merge_rule = rule,
        sync_interval_seconds = 1, heartbeat_interval_seconds = 1, peer_timeout_seconds = 1e6 })
    end
  end
  for i = 1, n do
    for j = 1, n do if i ~= j then m.engines[i]:add_peer("n" .. j) end end
  end
  return m
end

-- the router's current bytes and identity: what must agree everywhere
local function router_print(store)
  local w, b, info = store:get_weights("router", 1)
  return ("%d %s %s %s"):format(info.hlc, info.origin, w:tobytes(), b:tobytes())
end

--- Write every runtime's steps, deliver every message until the engines
--- agree, and let every runtime take up the merge.
function Mesh:sync()
  for _, rt in ipairs(self.rts) do assert(rt:poll(0)) end
  if self.n == 1 then return end
  for _ = 1, 200 do
    self.t = self.t + 1
    local moved = 0
    for _, e in ipairs(self.engines) do assert(e:tick(self.t)) end
    repeat
      local round = 0
      for i, e in ipairs(self.engines) do
        for _, msg in ipairs(e:outbox()) do
          self.engines[tonumber(msg.to:sub(2))]:receive("n" .. i, msg.bytes)
          round = round + 1
        end
      end
      moved = moved + round
    until round == 0
    local d, agreed = self.engines[1]:digest(), true
    for i = 2, self.n do agreed = agreed and self.engines[i]:digest() == d end
    if agreed and moved == 0 then break end
  end
  for _, rt in ipairs(self.rts) do assert(rt:poll(0)) end
  local want = router_print(self.rts[1].store)
  for i = 2, self.n do
    if router_print(self.rts[i].store) ~= want then self.identical = false end
  end
end

function Mesh:close()
  for _, e in ipairs(self.engines) do e:close() end
  for _, rt in ipairs(self.rts) do rt:close() end
  U.rmdir(self.dir)
end

local function top(rt, query)
  local _, ranked = rt:route(query)
  return rt.order[ranked[1]]
end

local function router_norm(store)
  local w, b = store:get_weights("router", 1)
  local s = 0
  for _, v in ipairs(w:totable()) do s = s + v * v end
  for _, v in ipairs(b:totable()) do s = s + v * v end
  return math.sqrt(s)
end

local function kept(rt, before)
  local k = 0
  for i, q in ipairs(UNRELATED) do if top(rt, q) == before[i] then k = k + 1 end end
  return k
end

local function same(b) return b and "yes" or "NO" end

-- ---- same data -----------------------------------------------------------------
do
  local STEPS, LR = quick and 8 or 10, 1.0
  local query, domain = nonsense(1), "mathematics"
  print(("  same data: N runtimes train one query at lr %g, %d steps, a sync after each"):format(LR, STEPS))
  local base_rt = mesh(1, "normalized", LR)
  local before = {}
  for i, q in ipairs(UNRELATED) do before[i] = top(base_rt.rts[1], q) end
  local function run(m)
    for _ = 1, STEPS do
      for _, rt in ipairs(m.rts) do rt:train(query, domain) end
      m:sync()
    end
    return router_norm(m.rts[1].store), kept(m.rts[1], before)
  end
  local norm1, kept1 = run(base_rt)
  base_rt:close()
  print(("  %-11s %3s %12s %14s %10s"):format("rule", "N", "router norm", "x one runtime", "kept/8"))
  print(("  %-11s %3d %12.2f %14.2f %10s"):format("(one)", 1, norm1, 1, kept1 .. "/8"))
  for _, rule in ipairs(RULES) do
    for _, n in ipairs(quick and { 2, 8 } or { 2, 4, 8 }) do
      local m = mesh(n, rule, LR)
      local norm, k = run(m)
      print(("  %-11s %3d %12.2f %14.2f %10s   identical: %s"):format(rule, n, norm, norm / norm1, k .. "/8",
                                                                     same(m.identical)))
      m:close()
    end
  end
end

-- ---- different data --------------------------------------------------------------
do
  local LR, CAP, MESH_CAP = 0.5, 80, 25
  local function learned(rt, qs)
    for _, q in ipairs(qs) do if top(rt, q[1]) ~= q[2] then return false end end
    return true
  end
  local function queries(n)
    local qs = {}
    for i = 1, n do qs[i] = { nonsense(100 + i), DOMAINS[i % #DOMAINS + 1] } end
    return qs
  end
  print(("  different data: runtime i trains query i at lr %g; rounds until all N route everywhere"):format(LR))
  print(("  %-11s %3s %14s %10s %12s"):format("rule", "N", "one in turn", "mesh", "mesh / one"))
  for _, n in ipairs(quick and { 2, 6 } or { 2, 4, 6, 8 }) do
    local qs = queries(n)
    -- one runtime, one step per round, the queries in turn
    local one = mesh(1, "normalized", LR)
    local r1 = nil
    for r = 1, CAP do
      local q = qs[(r - 1) % n + 1]
      one.rts[1]:train(q[1], q[2])
      one:sync()
      if learned(one.rts[1], qs) then r1 = r break end
    end
    one:close()
    for _, rule in ipairs(RULES) do
      local m = mesh(n, rule, LR)
      local rn = nil
      for r = 1, MESH_CAP do
        for i, rt in ipairs(m.rts) do rt:train(qs[i][1], qs[i][2]) end
        m:sync()
        local all = true
        for _, rt in ipairs(m.rts) do all = all and learned(rt, qs) end
        if all then rn = r break end
      end
      print(("  %-11s %3d %14s %10s %12s   identical: %s"):format(rule, n, r1 or (">" .. CAP),
            rn or (">" .. MESH_CAP), rn and r1 and ("%.2f"):format(rn / r1) or rn and ("<%.2f"):format(rn / CAP) or "-",
            same(m.identical)))
      m:close()
    end
  end
end

-- ---- conflict --------------------------------------------------------------------
do
  local LR, LOCAL, SYNCS = 1.0, 5, quick and 6 or 10
  local query = nonsense(7)
  print(("  conflict: 2:2 train one query toward %s / %s, lr %g, %d local steps a sync, %d syncs")
        :format("coding", "context", LR, LOCAL, SYNCS))
  local one = mesh(1, "normalized", LR)
  for _ = 1, LOCAL * SYNCS do one.rts[1]:train(query, "coding") end
  one:sync()
  local norm1 = router_norm(one.rts[1].store)
  one:close()
  print(("  %-11s %6s %12s %14s %8s"):format("rule", "flips", "router norm", "x one runtime", "ends on"))
  for _, rule in ipairs(RULES) do
    local m = mesh(4, rule, LR)
    local flips, last = 0, top(m.rts[1], query)
    for _ = 1, SYNCS do
      for i, rt in ipairs(m.rts) do
        for _ = 1, LOCAL do rt:train(query, i <= 2 and "coding" or "context") end
      end
      m:sync()
      local t = top(m.rts[1], query)
      if t ~= last then flips = flips + 1 end
      last = t
    end
    local norm = router_norm(m.rts[1].store)
    print(("  %-11s %6d %12.2f %14.2f %8s   identical: %s"):format(rule, flips, norm, norm / norm1, last,
                                                                  same(m.identical)))
    m:close()
  end
end

-- ---- one checkpoint restored on two nodes ------------------------------------------
do
  print("  restore: a checkpoint holding 1, a later write 5, restored on two nodes at once")
  for _, rule in ipairs(RULES) do
    local dir = tmpdir()
    local s, e = {}, {}
    for i = 1, 2 do
      s[i] = assert(synaptic.open(dir .. "/s" .. i))
      e[i] = synaptic.sync_engine(s[i], { node_id = "n" .. i, conflict_resolution = "merge", merge_rule = rule,
                                           sync_interval_seconds = 1, heartbeat_interval_seconds = 1 })
    end
    e[1]:add_peer("n2"); e[2]:add_peer("n1")
    local t = 0
    local function sync()
      for _ = 1, 20 do
        t = t + 1
        for i = 1, 2 do e[i]:tick(t) end
        for i = 1, 2 do
          for _, msg in ipairs(e[i]:outbox()) do e[3 - i]:receive("n" .. i, msg.bytes) end
        end
      end
    end
    s[1]:put_weights("x", 0, { 1, 0.1, -2.5 })
    sync()
    local cp = s[1]:create_checkpoint { system_version = "one" }
    sync()
    s[2]:put_weights("x", 0, { 5, 5, 5 })
    sync()
    assert(s[1]:restore_checkpoint(cp))
    assert(s[2]:restore_checkpoint(cp))
    sync()
    local want = synaptic.floats({ 1, 0.1, -2.5 }):tobytes()
    local a, b = s[1]:get_weights("x", 0), s[2]:get_weights("x", 0)
    print(("  %-11s both on the checkpoint's bytes: %-4s first weight %g, %g")
          :format(rule, same(a:tobytes() == want and b:tobytes() == want), a:totable()[1], b:totable()[1]))
    for i = 1, 2 do e[i]:close(); s[i]:close() end
    U.rmdir(dir)
  end
end

U.rmdir(SEED_DIR)
