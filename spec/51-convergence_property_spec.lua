-- Convergence as a property: random weights writes, configs and
-- checkpoints on random nodes, delivered with loss, duplication,
-- reordering and partitions, under each conflict strategy. Once writes stop
-- and the network heals: every store holds the same replicated data byte
-- for byte, merges are identical everywhere, and every acknowledged write
-- is current, in history, or a listed conflict on every node.
local synaptic = require "synaptic"
local helpers = require "helpers"
local sim = require "sim"

local EXPERTS = { "a", "b" }
local LAYERS = 2

local function run(strategy, seed)
  local s = sim.new {
    n = 5, dir = helpers.tmpdir("prop"), seed = seed, loss = 0.15, dup = 0.1, delay = 3, degree = 2,
    config = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10,
               conflict_resolution = strategy },
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

describe("convergence property", function()
  after_each(helpers.cleanup)

  for _, strategy in ipairs { "latest_timestamp", "merge", "highest_version" } do
    it(strategy .. ": random writes under loss, duplication, reordering and partitions converge", function()
      local writes = 0
      for seed = 1, 3 do writes = writes + run(strategy, seed) end
      assert.is_true(writes > 20)
    end)
  end
end)
