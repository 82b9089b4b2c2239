-- Convergence as a property: random weights writes, configs and
-- checkpoints on random nodes, delivered with loss, duplication,
-- reordering and partitions, under each conflict strategy. Once writes stop
-- and the network heals: every store holds the same replicated data byte
-- for byte, merges are identical everywhere, and every acknowledged write
-- is current, in history, or a listed conflict on every node.
local synaptic = require "synaptic"
local core = require "synaptic.core"
local helpers = require "helpers"
local sim = require "sim"

local EXPERTS = { "a", "b" }
local LAYERS = 2

local function run(strategy, seed, rule)
  local s = sim.new {
    n = 5, dir = helpers.tmpdir("prop"), seed = seed, loss = 0.15, dup = 0.1, delay = 3, degree = 2,
    config = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10,
               conflict_resolution = strategy, merge_rule = rule },
  }
  local rand, acked = s.rand, {}
  for round = 1, 24 do
    if round == 6 then s:partition(function(i) return i <= 2 and "l" or "r" end) end
    if round == 14 then s:partition(function(i) return i % 2 end) end
    if round == 20 then s:heal() end
    for _ = 1, rand(3) do
      local node = s.nodes[rand(s.n)]
      local x, l = EXPERTS[rand(#EXPERTS)], rand(LAYERS) - 1
      local r = rand(10)
      if r <= 7 then
        -- one shape per layer, so merges apply
        local w = helpers.weights(6, seed * 1000 + round * 10 + r)
        assert(node.store:put_weights(x, l, w, { r }))
        acked[#acked + 1] = { x = x, l = l, bytes = synaptic.floats(w):tobytes() }
      elseif r <= 9 then
        node.store:put_config { expert_id = x, domain = ("r%d"):format(round), parameter_count = r,
                                learning_rate = 0.01, architecture = { 6, 1 } }
      else
        node.store:create_checkpoint { system_version = ("r%d"):format(round) }
      end
    end
    s:step()
  end
  s:heal()
  assert.is_number(s:run_until_agreed(300), strategy .. " seed " .. seed .. " did not converge")
  for _ = 1, 5 do s:step() end
  local want = sim.fingerprint(s.nodes[1].store, EXPERTS, LAYERS)
  for i = 2, s.n do
    assert.equal(want, sim.fingerprint(s.nodes[i].store, EXPERTS, LAYERS),
                 ("%s seed %d: node %d differs"):format(strategy, seed, i))
  end
  -- nothing acknowledged is lost: every write is in every node's history
  for i = 1, s.n do
    local st = s.nodes[i].store
    local held = {}
    for _, x in ipairs(EXPERTS) do
      for l = 0, LAYERS - 1 do
        for _, v in ipairs(st:weight_versions(x, l)) do
          held[x .. l .. st:get_weights(x, l, v):tobytes()] = true
        end
      end
    end
    for _, w in ipairs(acked) do
      assert.is_true(held[w.x .. w.l .. w.bytes], ("%s seed %d: node %d lost a write"):format(strategy, seed, i))
    end
    local ok, report = st:verify()
    assert.is_true(ok, report.problems[1] and report.problems[1].error)
  end
  s:close()
  return #acked
end

-- Every node, cut off from the rest, makes the same change to layer 0 and
-- a change of its own weight to layer 1; delivered with loss, duplication
-- and reordering, the normalized merge is the one change on layer 0 and the
-- exact sum on layer 1, byte for byte on every node.
local function shared_and_disjoint(seed)
  local s = sim.new {
    n = 5, dir = helpers.tmpdir("prop"), seed = seed, loss = 0.15, dup = 0.1, delay = 3, degree = 2,
    config = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10,
               conflict_resolution = "merge" },
  }
  local base = helpers.weights(5, seed)
  s.nodes[1].store:put_weights("x", 0, base, { 0 })
  s.nodes[1].store:put_weights("x", 1, base, { 0 })
  assert.is_number(s:run_until_agreed(300), "seed " .. seed .. ": the base did not spread")
  s:partition(function(i) return i end)
  local same, sum = {}, {}
  for j = 1, 5 do same[j] = base[j] + 0.25 * j end
  local b32 = synaptic.floats(base):totable()
  for j = 1, 5 do sum[j] = b32[j] end
  for i = 1, s.n do
    assert(s.nodes[i].store:put_weights("x", 0, same, { 0 }))
    local mine = {}
    for j = 1, 5 do mine[j] = b32[j] end
    mine[i] = b32[i] - 0.5 * i
    assert(s.nodes[i].store:put_weights("x", 1, mine, { 0 }))
    sum[i] = sum[i] + (synaptic.floats(mine):totable()[i] - b32[i])
  end
  s:heal()
  assert.is_number(s:run_until_agreed(300), "seed " .. seed .. " did not converge")
  for _ = 1, 5 do s:step() end
  for i = 1, s.n do
    local st = s.nodes[i].store
    assert.equal(synaptic.floats(same):tobytes(), st:get_weights("x", 0):tobytes(), ("seed %d node %d: layer 0"):format(seed, i))
    assert.equal(synaptic.floats(sum):tobytes(), st:get_weights("x", 1):tobytes(), ("seed %d node %d: layer 1"):format(seed, i))
  end
  local want = sim.fingerprint(s.nodes[1].store, { "x" }, 2)
  for i = 2, s.n do assert.equal(want, sim.fingerprint(s.nodes[i].store, { "x" }, 2)) end
  s:close()
end

describe("convergence property", function()
  after_each(helpers.cleanup)

  it("merge (normalized): an identical change counts once and disjoint changes sum exactly, under loss", function()
    for seed = 1, 3 do shared_and_disjoint(seed) end
  end)

  -- every strategy of the core's table but prefer_local (each node keeps
  -- its own: it does not converge, by design), and merge under each rule
  for _, strategy in ipairs(core.p2p_limits.conflict_strategies) do
    local rules = strategy == "merge" and core.p2p_limits.merge_rules or { false }
    for _, rule in ipairs(strategy ~= "prefer_local" and rules or {}) do
      local name = strategy .. (rule and " (" .. rule .. ")" or "")
      it(name .. ": random writes under loss, duplication, reordering and partitions converge", function()
        local writes = 0
        for seed = 1, 3 do writes = writes + run(strategy, seed, rule or nil) end
        assert.is_true(writes > 20)
      end)
    end
  end
end)
