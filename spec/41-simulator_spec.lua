-- Convergence under faults: 20 transport-free engines through a simulated
-- network with 10% loss, duplication, reordering and a partition that
-- heals. Once writes stop and the network heals, every store must hold the
-- same replicated data, byte for byte.
local synaptic = require "synaptic"
local helpers = require "helpers"
local sim = require "sim"

local EXPERTS = { "coding", "mathematics", "reasoning" }
local LAYERS = 3

local function workload(s, round)
  for i, node in ipairs(s.nodes) do
    if (i + round) % 3 == 0 then
      -- several nodes write the same expert/layer in one round: conflicts
      node.store:put_weights(EXPERTS[i % #EXPERTS + 1], (i + round) % LAYERS,
                             synaptic.floats(helpers.weights(16, i * 100 + round)), { 0.1 * i })
    end
    if (i + round) % 7 == 0 then
      node.store:put_config { expert_id = EXPERTS[i % #EXPERTS + 1], domain = ("n%d-r%d"):format(i, round),
                              parameter_count = i, learning_rate = 0.01, architecture = { 16, 8 } }
    end
    if (i + round) % 13 == 0 then
      node.store:create_checkpoint { system_version = ("n%d-r%d"):format(i, round) }
    end
  end
end

describe("simulated mesh", function()
  after_each(helpers.cleanup)

  it("20 nodes with 10% loss, duplication, reordering and a healed partition end identical", function()
    local s = sim.new {
      n = 20, dir = helpers.tmpdir("sim"), seed = 2024,
      loss = 0.10, dup = 0.05, delay = 3, degree = 2,
      config = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1,
                 peer_timeout_seconds = 10, max_peers = 32 },
    }
    for round = 1, 4 do workload(s, round); s:step() end
    -- a partition: two halves keep writing, each converging on its own
    s:partition(function(i) return i <= 10 and "left" or "right" end)
    for round = 5, 14 do workload(s, round); s:step() end
    local left = sim.fingerprint(s.nodes[1].store, EXPERTS, LAYERS)
    local right = sim.fingerprint(s.nodes[20].store, EXPERTS, LAYERS)
    assert.is_not.equal(left, right)
    -- writes stop, the network heals
    s:heal()
    local steps = s:run_until_agreed(200)
    assert.is_number(steps, "the mesh did not converge within 200 steps")
    for _ = 1, 3 do s:step() end          -- let in-flight duplicates land
    local want = sim.fingerprint(s.nodes[1].store, EXPERTS, LAYERS)
    for i = 2, s.n do
      assert.equal(want, sim.fingerprint(s.nodes[i].store, EXPERTS, LAYERS), "node " .. i .. " differs")
    end
    -- the run had conflicts and kept them on every node, identically
    local kept = 0
    for _, x in ipairs(EXPERTS) do
      for l = 0, LAYERS - 1 do kept = kept + #s.nodes[1].store:conflicts(x, l) end
    end
    assert.is_true(kept > 0)
    assert.is_true(s.dropped > 0)
    for i = 1, s.n do
      local ok, report = s.nodes[i].store:verify()
      assert.is_true(ok, "node " .. i .. ": " .. sim.canon(report))
    end
    s:close()
  end)

  it("converges from every delivery order (three seeds, no partition)", function()
    local prints = {}
    for seed = 1, 3 do
      local s = sim.new { n = 5, dir = helpers.tmpdir("sim" .. seed), seed = seed, loss = 0.2, dup = 0.2, delay = 4,
                          config = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10 } }
      for round = 1, 6 do workload(s, round); s:step() end
      assert.is_number(s:run_until_agreed(200))
      local f = sim.fingerprint(s.nodes[1].store, EXPERTS, LAYERS)
      for i = 2, s.n do assert.equal(f, sim.fingerprint(s.nodes[i].store, EXPERTS, LAYERS)) end
      prints[seed] = #f
      s:close()
    end
  end)
end)
