-- Any number of concurrent heads converges (issue 17): forty writers of one
-- layer at once through a hub, and random writers under loss, duplication,
-- reordering and partitions with more concurrent heads than a write can
-- name as parents. Past that bound the layer resolves by the resolver's
-- pick on every node and a local write folds the heads it can name; no
-- write is refused, and an origin's later writes of other kinds are not
-- held up behind one.
local synaptic = require "synaptic"
local helpers = require "helpers"
local sim = require "sim"

local CFG = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 30, max_peers = 64 }

-- node 1 is the hub; every other node is linked to it only
local function hub(n, strategy)
  local dir = helpers.tmpdir("hub")
  local nodes = {}
  for i = 1, n do
    local store = assert(synaptic.open(("%s/n%02d"):format(dir, i), { write_buffer_mb = 1, cache_mb = 1 }))
    local cfg = { node_id = "n" .. i, conflict_resolution = strategy }
    for k, v in pairs(CFG) do cfg[k] = v end
    nodes[i] = { id = "n" .. i, store = store, engine = synaptic.sync_engine(store, cfg) }
  end
  for i = 2, n do nodes[1].engine:add_peer("n" .. i); nodes[i].engine:add_peer("n1") end
  local t = 0
  local function step()
    t = t + 1
    local queue = {}
    for i, node in ipairs(nodes) do
      assert(node.engine:tick(t))
      for _, m in ipairs(node.engine:outbox()) do queue[#queue + 1] = { from = node.id, to = m.to, bytes = m.bytes } end
    end
    while #queue > 0 do
      local later = {}
      for _, m in ipairs(queue) do
        local to = nodes[tonumber(m.to:sub(2))]
        assert(to.engine:receive(m.from, m.bytes))
        for _, o in ipairs(to.engine:outbox()) do later[#later + 1] = { from = to.id, to = o.to, bytes = o.bytes } end
      end
      queue = later
    end
  end
  local function agreed()
    local d = nodes[1].engine:digest()
    for i = 2, n do if nodes[i].engine:digest() ~= d then return false end end
    return true
  end
  local function converge(max)
    for _ = 1, max do step(); if agreed() then for _ = 1, 3 do step() end return true end end
    return false
  end
  return nodes, converge
end

local function all_same(nodes, experts, layers)
  local want = sim.fingerprint(nodes[1].store, experts, layers)
  for i = 2, #nodes do
    assert.equal(want, sim.fingerprint(nodes[i].store, experts, layers), "node " .. i .. " differs")
  end
end

local function close(nodes) for _, x in ipairs(nodes) do x.engine:close(); x.store:close() end end

describe("many concurrent heads", function()
  after_each(helpers.cleanup)

  for _, strategy in ipairs { "merge", "latest_timestamp" } do
    it("forty writers of one layer through a hub converge, twice (" .. strategy .. ")", function()
      local nodes, converge = hub(41, strategy)
      for i = 2, 41 do
        assert(nodes[i].store:put_weights("shared", 0, helpers.weights(6, i), { i }))
        -- a later write of another kind from the same origin
        nodes[i].store:put_config { expert_id = "w" .. i, domain = "d", parameter_count = i,
                                    learning_rate = 0.01, architecture = { 6, 1 } }
      end
      assert.is_true(converge(60), "the hub and forty writers did not converge")
      all_same(nodes, { "shared" }, 1)
      for i = 2, 41 do
        assert.equal(40, #nodes[i].store:weight_versions("shared", 0))
        assert.is_table(nodes[i].store:get_config("w" .. (i % 40 + 2)), "writer " .. i .. "'s config missing")
      end
      -- every writer writes again over forty heads: a local write folds what
      -- it can name; nothing is refused
      for i = 2, 41 do assert(nodes[i].store:put_weights("shared", 0, helpers.weights(6, 100 + i), { i })) end
      assert.is_true(converge(60), "the second round did not converge")
      all_same(nodes, { "shared" }, 1)
      -- every write of both rounds is in every node's history
      for i = 1, 41 do assert.equal(80, #nodes[i].store:weight_versions("shared", 0)) end
      close(nodes)
    end)
  end

  it("random writers past the parents bound converge under loss, duplication, reordering and partitions", function()
    for _, seed in ipairs { 3, 11 } do
      local s = sim.new {
        n = 40, dir = helpers.tmpdir("many"), seed = seed, loss = 0.1, dup = 0.1, delay = 2, degree = 2,
        config = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10,
                   conflict_resolution = "merge" },
      }
      local rand, acked = s.rand, {}
      -- everyone writes the layer before hearing anyone: 40 concurrent
      -- heads, which reach every node before anyone writes again
      for i = 1, s.n do
        local w = helpers.weights(4, seed * 100 + i)
        assert(s.nodes[i].store:put_weights("x", 0, w, {}))
        acked[#acked + 1] = synaptic.floats(w):tobytes()
      end
      assert.is_number(s:run_until_agreed(400), "seed " .. seed .. ": the first round did not spread")
      -- then writers over forty heads, across a partition
      for round = 1, 12 do
        if round == 3 then s:partition(function(i) return i <= 20 and "l" or "r" end) end
        if round == 9 then s:heal() end
        for _ = 1, rand(4) do
          local w = helpers.weights(4, seed * 1000 + round * 10 + rand(9))
          assert(s.nodes[rand(s.n)].store:put_weights("x", 0, w, {}))
          acked[#acked + 1] = synaptic.floats(w):tobytes()
        end
        s:step()
      end
      s:heal()
      assert.is_number(s:run_until_agreed(400), "seed " .. seed .. " did not converge")
      for _ = 1, 5 do s:step() end
      local want = sim.fingerprint(s.nodes[1].store, { "x" }, 1)
      for i = 2, s.n do
        assert.equal(want, sim.fingerprint(s.nodes[i].store, { "x" }, 1), ("seed %d: node %d differs"):format(seed, i))
      end
      for i = 1, s.n do
        local st, held = s.nodes[i].store, {}
        for _, v in ipairs(st:weight_versions("x", 0)) do held[st:get_weights("x", 0, v):tobytes()] = true end
        for _, bytes in ipairs(acked) do assert.is_true(held[bytes] == true, "an acknowledged write is missing") end
      end
      s:close()
    end
  end)
end)
