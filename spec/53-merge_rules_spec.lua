-- The merge rules (merge_rule, issue 18) across nodes through the
-- simulator: a change two nodes made identically counts once (two nodes
-- restoring one checkpoint end on its exact bytes), changes to different
-- weights sum exactly, "mean" averages, "sum" is the old rule, and a rule
-- may be chosen per expert or layer by a table or a function. The
-- arithmetic itself is tested without RocksDB in spec/c/test_merge.c.
local synaptic = require "synaptic"
local core = require "synaptic.core"
local helpers = require "helpers"
local sim = require "sim"

local FAST = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10,
               conflict_resolution = "merge" }

local function mesh(extra, n)
  local config = {}
  for k, v in pairs(FAST) do config[k] = v end
  for k, v in pairs(extra or {}) do config[k] = v end
  return sim.new { n = n or 3, dir = helpers.tmpdir("rules"), seed = 11, degree = 2, config = config }
end

local function settle(s)
  assert.is_number(s:run_until_agreed(100), "did not converge")
  for _ = 1, 4 do s:step() end
end

local function alone(s) s:partition(function(i) return i end) end
local function f32s(t) return synaptic.floats(t):tobytes() end

local function same_everywhere(s, experts, layers)
  local want = sim.fingerprint(s.nodes[1].store, experts, layers)
  for i = 2, s.n do assert.equal(want, sim.fingerprint(s.nodes[i].store, experts, layers), "node " .. i) end
end

-- every node's current weights of x/layer, as bytes
local function current(s, x, layer)
  local out = {}
  for i = 1, s.n do
    local w, b = s.nodes[i].store:get_weights(x, layer)
    out[i] = w:tobytes() .. "|" .. b:tobytes()
  end
  return out
end

-- from one base, each node i writes base + deltas[i] (weights only) alone,
-- then the mesh heals and settles
local function concurrent(s, x, layer, base, deltas)
  s.nodes[1].store:put_weights(x, layer, base, { 0 })
  settle(s)
  alone(s)
  for i, d in ipairs(deltas) do
    local w = {}
    for j = 1, #base do w[j] = base[j] + d[j] end
    s.nodes[i].store:put_weights(x, layer, w, { 0 })
  end
  s:heal()
  settle(s)
end

describe("merge rules", function()
  after_each(helpers.cleanup)

  it("lists the rules and the strategies in core.p2p_limits, default first", function()
    assert.same({ "normalized", "sum", "mean" }, core.p2p_limits.merge_rules)
    assert.same({ "latest_timestamp", "merge", "highest_version", "prefer_local" },
                core.p2p_limits.conflict_strategies)
    assert.equal("normalized", core.p2p_defaults.merge_rule)
    assert.equal("normalized", synaptic.p2p_config({}).merge_rule)
  end)

  it("p2p_config rejects an unknown rule, a bad table and a bad type, naming the field", function()
    assert.has_error(function() synaptic.p2p_config { merge_rule = "median" } end,
      "p2p_config: merge_rule must be normalized, sum, mean, a table or a function")
    assert.has_error(function() synaptic.p2p_config { merge_rule = { router = "avg" } } end,
      'p2p_config: merge_rule ["router"] must be normalized, sum, mean')
    assert.has_error(function() synaptic.p2p_config { merge_rule = { [1] = "sum" } } end,
      'p2p_config: merge_rule keys must be expert ids or "expert/layer"')
    assert.has_error(function() synaptic.p2p_config { merge_rule = 3 } end,
      "p2p_config: merge_rule must be a string or table or function, not a number")
  end)

  it("a runtime's merge_rule reaches its node's config, and a bad one raises at open", function()
    local rs = require "synaptic.runtime_sync"
    assert.equal("mean", rs.checked_config({ node_id = "a" }, 1, "mean").merge_rule)
    assert.equal("sum", rs.checked_config({ node_id = "a", merge_rule = "sum" }, 1, "mean").merge_rule)
    assert.equal("normalized", rs.checked_config(nil, 1).merge_rule)
    local dir = helpers.tmpdir("rules")
    assert.has_error(function() synaptic.runtime(dir .. "/rt", { merge_rule = "median" }) end,
      "p2p_config: merge_rule must be normalized, sum, mean, a table or a function")
    local rt = assert(synaptic.runtime(dir .. "/rt", { merge_rule = { router = "mean" } }))
    assert.same({ router = "mean" }, rt.config.merge_rule)
    rt:close()
  end)

  it("two nodes restoring one checkpoint both end on its exact bytes", function()
    local s = mesh()
    local a, b = s.nodes[1].store, s.nodes[2].store
    local cp_w, cp_b = { 1, 0.1, -2.5, 3.3 }, { 0.7 }
    a:put_weights("x", 0, cp_w, cp_b)
    settle(s)
    local cp = a:create_checkpoint { system_version = "one" }
    b:put_weights("x", 0, { 5, 5, 5, 5 }, { 5 })
    settle(s)
    alone(s)
    assert(a:restore_checkpoint(cp))
    assert(b:restore_checkpoint(cp))
    s:heal()
    settle(s)
    for i = 1, s.n do
      local w, bias = s.nodes[i].store:get_weights("x", 0)
      assert.equal(f32s(cp_w), w:tobytes(), "node " .. i)
      assert.equal(f32s(cp_b), bias:tobytes(), "node " .. i)
    end
    same_everywhere(s, { "x" }, 1)
    s:close()
  end)

  it("normalized: runtimes training the same query in a mesh end on one runtime's exact bytes", function()
    local dir = helpers.tmpdir("rules")
    assert(synaptic.runtime(dir .. "/seed", { seed = 7 })):close()
    local function open(name)
      os.execute(("cp -r '%s/seed' '%s/%s'"):format(dir, dir, name))
      return assert(synaptic.runtime(dir .. "/" .. name,
        { seed = 7, auto_save_interval = 1e9, max_weight_versions = 0, learning_rate = 1, backup_enabled = false }))
    end
    local one, rts, engines = open("one"), {}, {}
    for i = 1, 3 do
      rts[i] = open("r" .. i)
      engines[i] = synaptic.sync_engine(rts[i].store, { node_id = "n" .. i, conflict_resolution = "merge",
        sync_interval_seconds = 1, heartbeat_interval_seconds = 1, peer_timeout_seconds = 1e6 })
    end
    for i = 1, 3 do for j = 1, 3 do if i ~= j then engines[i]:add_peer("n" .. j) end end end
    local t = 0
    local function sync()
      for _, rt in ipairs(rts) do assert(rt:poll(0)) end
      for _ = 1, 6 do
        t = t + 1
        for _, e in ipairs(engines) do assert(e:tick(t)) end
        for i, e in ipairs(engines) do
          for _, m in ipairs(e:outbox()) do engines[tonumber(m.to:sub(2))]:receive("n" .. i, m.bytes) end
        end
      end
      for _, rt in ipairs(rts) do assert(rt:poll(0)) end
    end
    local query = "zebra lantern quartz velvet"
    for _ = 1, 3 do
      one:train(query, "mathematics")
      assert(one:poll(0))
      for _, rt in ipairs(rts) do rt:train(query, "mathematics") end
      sync()
    end
    for _, x in ipairs { "router", "mathematics" } do
      for _, l in ipairs(one.store:layers(x)) do
        local want = one.store:get_weights(x, l):tobytes()
        for i, rt in ipairs(rts) do
          local w, _, info = rt.store:get_weights(x, l)
          assert.equal(want, w:tobytes(), ("%s/%d on runtime %d"):format(x, l, i))
          if x == "router" then assert.matches("^base %+ 3 heads, normalized", info.merge) end
        end
      end
    end
    for _, e in ipairs(engines) do e:close() end
    for _, rt in ipairs(rts) do rt:close() end
    one:close()
  end)

  it("sum, the old rule, applies a rollback two nodes made twice", function()
    local s = mesh { merge_rule = "sum" }
    local a, b = s.nodes[1].store, s.nodes[2].store
    a:put_weights("x", 0, { 1 }, { 0 })
    settle(s)
    local cp = a:create_checkpoint { system_version = "one" }
    b:put_weights("x", 0, { 5 }, { 0 })
    settle(s)
    alone(s)
    assert(a:restore_checkpoint(cp))
    assert(b:restore_checkpoint(cp))
    s:heal()
    settle(s)
    for i = 1, s.n do assert.same({ -3 }, s.nodes[i].store:get_weights("x", 0):totable()) end
    s:close()
  end)

  it("normalized: the same step made on two nodes counts once, beside a different one in full", function()
    local s = mesh()
    concurrent(s, "x", 0, { 0.5, 0.25, -1, 2 }, { { 0.125, 0, 0, 0 }, { 0.125, 0, 0, 0 }, { 0, 0, 0.5, 0 } })
    for i, bytes in ipairs(current(s, "x", 0)) do
      assert.equal(f32s { 0.625, 0.25, -0.5, 2 } .. "|" .. f32s { 0 }, bytes, "node " .. i)
    end
    local _, _, info = s.nodes[1].store:get_weights("x", 0)
    assert.matches("^base %+ 3 heads, normalized", info.merge)
    same_everywhere(s, { "x" }, 1)
    s:close()
  end)

  it("normalized: changes to different weights sum exactly; the same change thrice is taken once", function()
    local s = mesh()
    concurrent(s, "x", 0, { 1, 2, 3, 4, 5, 6 },
               { { 0.1, 0, 0, 0, 0, 0 }, { 0, 0.3, 0, 0, -0.7, 0 }, { 0, 0, 0, 0.01, 0, 1e-3 } })
    -- in double from the floats each node wrote, rounded once: the exact sum
    local base = synaptic.floats({ 1, 2, 3, 4, 5, 6 }):totable()
    local heads = { synaptic.floats({ 1.1, 2, 3, 4, 5, 6 }):totable(), synaptic.floats({ 1, 2.3, 3, 4, 4.3, 6 }):totable(),
                    synaptic.floats({ 1, 2, 3, 4.01, 5, 6.001 }):totable() }
    local want = {}
    for j = 1, 6 do
      local d = 0
      for h = 1, 3 do d = d + (heads[h][j] - base[j]) end
      want[j] = base[j] + d
    end
    for i, bytes in ipairs(current(s, "x", 0)) do
      assert.equal(f32s(want) .. "|" .. f32s { 0 }, bytes, "node " .. i)
    end
    s:close()
    local t = mesh()
    concurrent(t, "y", 2, { 1, 2 }, { { 0.5, -0.25 }, { 0.5, -0.25 }, { 0.5, -0.25 } })
    for i, bytes in ipairs(current(t, "y", 2)) do assert.equal(f32s { 1.5, 1.75 } .. "|" .. f32s { 0 }, bytes, "node " .. i) end
    t:close()
  end)

  it("mean averages the changes; a table picks the rule per expert and per expert/layer", function()
    local s = mesh { merge_rule = { r = "mean", ["e/1"] = "sum" } }
    local deltas = { { 1, 0 }, { 0, 2 }, { 0, 0.5 } }
    concurrent(s, "r", 0, { 0, 0 }, deltas)     -- mean: base + (1, 2.5) / 3
    concurrent(s, "e", 1, { 0, 0 }, deltas)     -- sum
    concurrent(s, "e", 0, { 0, 0 }, { { 1, 0 }, { 1, 0 }, { 1, 0 } })   -- normalized (default)
    local third = synaptic.floats { 1 / 3, 2.5 / 3 }:tobytes()
    for i = 1, s.n do
      assert.equal(third, s.nodes[i].store:get_weights("r", 0):tobytes(), "node " .. i)
      assert.same({ 1, 2.5 }, s.nodes[i].store:get_weights("e", 1):totable())
      assert.same({ 1, 0 }, s.nodes[i].store:get_weights("e", 0):totable())
    end
    same_everywhere(s, { "r", "e" }, 2)
    s:close()
  end)

  it("a function picks the rule per expert and layer; a failing one leaves it to merge_rule's default", function()
    local calls = 0
    local s = mesh { merge_rule = function(expert, layer)
      calls = calls + 1
      if expert == "bad" then error("no rule for " .. expert) end
      return layer == 1 and "sum" or nil
    end }
    concurrent(s, "x", 1, { 0 }, { { 1 }, { 1 }, { 1 } })   -- sum: 3
    concurrent(s, "x", 0, { 0 }, { { 1 }, { 1 }, { 1 } })   -- nil: normalized, 1
    concurrent(s, "bad", 1, { 0 }, { { 1 }, { 1 }, { 1 } }) -- raised: normalized, 1
    assert.is_true(calls > 0)
    for i = 1, s.n do
      assert.same({ 3 }, s.nodes[i].store:get_weights("x", 1):totable(), "node " .. i)
      assert.same({ 1 }, s.nodes[i].store:get_weights("x", 0):totable(), "node " .. i)
      assert.same({ 1 }, s.nodes[i].store:get_weights("bad", 1):totable(), "node " .. i)
    end
    s:close()
  end)
end)
