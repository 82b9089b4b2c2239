-- The merge window (issue 17) as a property: nodes that merge under
-- max_weight_versions = 2 let a layer's records deeper than the window go,
-- each at its own pace, under loss, duplication, reordering and a partition
-- long enough that one side's history runs past the window; they still end
-- byte-identical, the records each keeps stop growing with the history,
-- and the merge across the long partition is the mean of the heads.
local synaptic = require "synaptic"
local helpers = require "helpers"
local sim = require "sim"

local ROUNDS = 500

-- weight_versions lists the versions whose records a store holds
local function held(store, x, l) return #store:weight_versions(x, l) end

local function run(seed)
  local s = sim.new {
    n = 4, dir = helpers.tmpdir("window"), seed = seed, loss = 0.1, dup = 0.1, delay = 2, degree = 1,
    config = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10,
               conflict_resolution = "merge" },
    store = { max_weight_versions = 2 },
  }
  local rand = s.rand
  local mid, peak = nil, 0
  for round = 1, ROUNDS do
    -- node 1 is cut off for 250 rounds, writing now and then; the others
    -- write on: their depth runs more than the window past node 1's
    if round == 100 then s:partition(function(i) return i == 1 and "alone" or "rest" end) end
    if round == 350 then s:heal() end
    for _ = 1, 2 do
      local i = rand(s.n)
      if not (s.cut and i == 1 and rand(4) > 1) then
        assert(s.nodes[i].store:put_weights("x", 0, helpers.weights(8, seed * 10000 + round * 10 + i), { i }))
      end
    end
    s:step()
    if round == 300 then mid = held(s.nodes[2].store, "x", 0) end
    if round > 300 then peak = math.max(peak, held(s.nodes[2].store, "x", 0)) end
  end
  assert.is_number(s:run_until_agreed(300), "seed " .. seed .. " did not converge")
  for _ = 1, 5 do s:step() end
  -- the same current write, conflicts and configs everywhere (which old
  -- records each still holds is its own: it trims at its own pace)
  local want = sim.fingerprint(s.nodes[1].store, { "x" }, 1, true)
  for i = 2, s.n do
    assert.equal(want, sim.fingerprint(s.nodes[i].store, { "x" }, 1, true), ("seed %d: node %d differs"):format(seed, i))
  end
  local st = s.nodes[2].store
  local _, _, info = st:get_weights("x", 0)
  local versions = info.version   -- the history's length
  -- history keeps every version; records stay near the window, not the history
  assert.is_true(versions > 800, versions .. " versions")
  assert.is_true(peak < versions / 2, ("%d records held of %d versions"):format(peak, versions))
  assert.is_true(peak <= mid * 1.5 + 20, ("records held grew from %d to %d"):format(mid, peak))
  for i = 1, s.n do
    local ok, report = s.nodes[i].store:verify()
    assert.is_true(ok, report.problems[1] and report.problems[1].error)
  end
  s:close()
end

describe("merge window", function()
  after_each(helpers.cleanup)

  it("trimmed at each node's own pace, a long partition still converges byte-identically with bounded records", function()
    for seed = 1, 2 do run(seed) end
  end)
end)
