-- A live mesh of runtimes: three runtimes with ZeroMQ nodes on 127.0.0.1
-- train different queries at the same time and each ends up using the
-- merged weights, without rt:reload().
local synaptic = require "synaptic"
local helpers = require "helpers"
local sim = require "sim"

local EXPERTS = { "reasoning", "coding", "language", "mathematics", "tool_use", "context", "router" }
-- words no keyword cue knows: only training routes them
local QUERIES = {
  { "zebra lantern quartz velvet", "mathematics" },
  { "harbor cactus violin meadow", "tool_use" },
  { "pepper glacier saddle orbit", "context" },
}
local FAST = { heartbeat_interval_seconds = 0.2, sync_interval_seconds = 0.5, peer_timeout_seconds = 5 }

-- Current weights of every layer (bytes and identity): what a runtime uses.
local function fingerprint(store)
  local out = {}
  for _, x in ipairs(EXPERTS) do
    for _, l in ipairs(store:layers(x)) do
      local w, b, info = store:get_weights(x, l)
      out[#out + 1] = ("%s/%d %d %s %s %s"):format(x, l, info.hlc, info.origin, w:tobytes(), b:tobytes())
    end
  end
  return table.concat(out, "\n")
end

-- Three runtimes on fresh stores that start from one store's weights (as a
-- mesh seeded from one machine does), each with a node; reload forbidden.
local function mesh(dir, opts)
  assert(synaptic.runtime(dir .. "/r1", { seed = 7 })):close()
  os.execute(("cp -r '%s/r1' '%s/r2' && cp -r '%s/r1' '%s/r3'"):format(dir, dir, dir, dir))
  local rts, addrs = {}, {}
  for i = 1, 3 do
    local p2p = { node_id = "rt" .. i, listen = "tcp://127.0.0.1:0", peers = {} }
    for k, v in pairs(FAST) do p2p[k] = v end
    for j = 1, i - 1 do p2p.peers[j] = addrs[j] end
    local config = { seed = 7, auto_save_interval = 3600, max_weight_versions = 0 }
    if opts and opts.at_open then
      config.sync_with_peers, config.p2p = true, p2p
      rts[i] = assert(synaptic.runtime(dir .. "/r" .. i, config))
    else
      rts[i] = assert(synaptic.runtime(dir .. "/r" .. i, config))
      assert(rts[i]:enable_p2p_sync(p2p))
    end
    addrs[i] = rts[i]:node():address()
    rts[i].reload = function() error("reload was called") end
  end
  return rts
end

-- Poll every runtime until their current weights agree (bounded).
local function settle(rts)
  local prints
  for _ = 1, 400 do
    for _, rt in ipairs(rts) do assert(rt:poll(5)) end
    prints = {}
    for i, rt in ipairs(rts) do prints[i] = fingerprint(rt.store) end
    if prints[1] == prints[2] and prints[2] == prints[3] then break end
  end
  return prints
end

local function top(rt, query)
  local _, details = rt:process(query)
  return details.domains[1]
end

describe("a live mesh of runtimes", function()
  after_each(helpers.cleanup)

  it("three runtimes training different queries at once all route every query, without reload", function()
    local rts = mesh(helpers.tmpdir("live"))
    for _, q in ipairs(QUERIES) do assert.not_equal(q[2], top(rts[1], q[1])) end
    -- all three train at once, each polling its node between steps
    local merged = false
    for _ = 1, 40 do
      for i, rt in ipairs(rts) do rt:train(QUERIES[i][1], QUERIES[i][2]) end
      for _, rt in ipairs(rts) do assert(rt:poll(0)) end
      -- merge by default: concurrent gates are combined, not one picked
      merged = merged or select(3, rts[1].store:get_weights("router", 1)).merge ~= nil
    end
    assert.is_true(merged)
    local prints = settle(rts)
    assert.equal(prints[1], prints[2])
    assert.equal(prints[1], prints[3])
    for i, rt in ipairs(rts) do
      for _, q in ipairs(QUERIES) do
        assert.equal(q[2], top(rt, q[1]), ("runtime %d routes '%s'"):format(i, q[1]))
      end
      assert.is_true(rt:node():stats().weights_received > 0)
    end
    -- what each uses is what its store holds: a fresh runtime on the store agrees
    local answers = {}
    for i, rt in ipairs(rts) do
      for _ = 1, i do rt:process("counted here") end
      assert(rt:flush())                           -- counters replicate; each keeps its own
    end
    for _ = 1, 20 do for _, rt in ipairs(rts) do rt:poll(5) end end
    for i, rt in ipairs(rts) do
      answers[i] = rt:process("a query to compare")
      local requests = rt:stats().total_requests
      local path = rt.store:path()
      rt:close()
      local again = assert(synaptic.runtime(path, { seed = 7 }))
      assert.equal(requests, again:stats().total_requests)
      assert.equal(answers[i], again:process("a query to compare"))
      again:close()
    end
    assert.equal(answers[1], answers[2])
    assert.equal(answers[1], answers[3])
  end)

  it("keeps unsaved training when the node is polled directly (sync_with_peers at open)", function()
    local rts = mesh(helpers.tmpdir("live"), { at_open = true })
    local a, b = rts[1], rts[2]
    for _ = 1, 25 do a:train(QUERIES[1][1], QUERIES[1][2]) end   -- unsaved in a
    for _ = 1, 25 do b:train(QUERIES[2][1], QUERIES[2][2]) end
    assert(b:flush())
    -- the user drives a's node: b's gate arrives while a's training is unsaved
    local epoch = a.store:weights_epoch()
    for _ = 1, 400 do
      a:node():poll(5); b:node():poll(5)
      if a.store:weights_epoch() ~= epoch then break end
    end
    assert.not_equal(epoch, a.store:weights_epoch())
    assert.equal(QUERIES[1][2], top(a, QUERIES[1][1]))   -- its own training kept
    assert.equal(QUERIES[2][2], top(a, QUERIES[2][1]))   -- b's taken up
    local prints = settle(rts)
    assert.equal(prints[1], prints[2])
    for _, rt in ipairs(rts) do
      assert.equal(QUERIES[1][2], top(rt, QUERIES[1][1]))
      assert.equal(QUERIES[2][2], top(rt, QUERIES[2][1]))
      rt:close()
    end
  end)

  it("loses nothing and counts nothing twice when all three change a layer at every step", function()
    local rts = mesh(helpers.tmpdir("live"), { at_open = true })
    local w0 = rts[1].gate:get_layer(1)
    local STEPS = 30
    for _ = 1, STEPS do
      for i, rt in ipairs(rts) do
        rt:route("take up what arrived")          -- as process and train do
        local w, b = rt.gate:get_layer(1)
        w[i] = w[i] + 1                          -- each runtime's own change
        rt.gate:set_layer(1, w, b)
      end
      for _, rt in ipairs(rts) do assert(rt:poll(0)) end
    end
    local prints = settle(rts)
    assert.equal(prints[1], prints[2])
    assert.equal(prints[1], prints[3])
    for _, rt in ipairs(rts) do
      local w = rt.gate:get_layer(1)             -- what the runtime uses
      for i = 1, 3 do assert.near(STEPS, w[i] - w0[i], 1e-3) end
      assert.near(0, w[4] - w0[4], 1e-6)
      rt:close()
    end
  end)

  it("checks its config and arguments", function()
    local dir = helpers.tmpdir("live")
    assert.has_error(function() synaptic.runtime(dir .. "/x", { p2p = {} }) end,
      "runtime: p2p is given but sync_with_peers is not true")
    assert.has_error(function() synaptic.runtime(dir .. "/x", { sync_with_peers = true }) end,
      "runtime: sync_with_peers = true needs p2p = {...} (the node's config)")
    local rt = assert(synaptic.runtime(dir .. "/y"))
    assert.is_nil(rt:node())
    assert.equal(0, rt:poll())                     -- no node: takes up what the store has
    assert.has_error(function() rt:poll(-1) end, "poll: timeout_ms must be a number from 0 to 3600000")
    local node = assert(rt:enable_p2p_sync { listen = "tcp://127.0.0.1:0" })
    assert.equal(node, rt:node())
    assert.has_error(function() rt:enable_p2p_sync {} end, "enable_p2p_sync: this runtime already has a node")
    rt:close()
    assert.has_error(function() rt:poll() end, "attempt to use a closed runtime")
  end)

  it("takes up a layer another writer changed in the store, and only that layer", function()
    local rt = assert(synaptic.runtime(helpers.tmpdir("live") .. "/s", { seed = 3 }))
    rt.reload = function() error("reload was called") end
    local w, b = rt.store:get_weights("router", 1)
    for i = 1, #w do w[i] = 0 end
    for i = 1, #b do b[i] = 0 end
    b[4] = 50                                      -- mathematics wins every query
    rt.store:put_weights("router", 1, w, b)
    assert.equal("mathematics", top(rt, "implement a function in code"))
    assert.equal(1, rt.taken_up)
    rt:close()
  end)
end)

-- The store side of it, transport-free and deterministic (the simulator):
-- writers that read the current weights, change their own part and write
-- with build_on_merge, all at once at every step, with loss, duplication
-- and reordering; the merge sums each change exactly once.
describe("build_on_merge and the merge of criss-crossed histories", function()
  after_each(helpers.cleanup)

  local function run(n, steps, seed)
    local s = sim.new { n = n, dir = helpers.tmpdir("bom"), seed = seed, loss = 0.1, dup = 0.1, delay = 3,
                        config = { conflict_resolution = "merge", sync_interval_seconds = 2,
                                   heartbeat_interval_seconds = 1, peer_timeout_seconds = 10 } }
    s.nodes[1].store:put_weights("x", 0, synaptic.floats(n), { 0 })
    assert.is_number(s:run_until_agreed(200))
    for _ = 1, steps do
      for i = 1, n do
        local st = s.nodes[i].store
        local w, b = st:get_weights("x", 0)
        w[i] = w[i] + 1
        st:put_weights("x", 0, w, b, { build_on_merge = true })
      end
      s:step()
    end
    assert.is_number(s:run_until_agreed(400), "did not converge")
    for _ = 1, 4 do s:step() end
    return s
  end

  it("loses no change and counts none twice, identically on every node", function()
    for _, seed in ipairs { 3, 11 } do
      local s = run(4, 25, seed)
      local want = sim.fingerprint(s.nodes[1].store, { "x" }, 1)
      for i = 1, s.n do
        local w, _, info = s.nodes[i].store:get_weights("x", 0)
        assert.same({ 25, 25, 25, 25 }, w:totable(), "node " .. i .. " seed " .. seed)
        if info.merge then assert.matches("^base ", info.merge) end
        assert.equal(want, sim.fingerprint(s.nodes[i].store, { "x" }, 1))
      end
      s:close()
    end
  end)

  it("under latest_timestamp builds on the current head and leaves the other heads concurrent", function()
    local s = sim.new { n = 2, dir = helpers.tmpdir("bom"), seed = 5,
                        config = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10 } }
    s.nodes[1].store:put_weights("x", 0, { 0, 0 })
    assert.is_number(s:run_until_agreed(100))
    s:partition(function(i) return i end)
    s.nodes[1].store:put_weights("x", 0, { 1, 0 })
    local t = synaptic.now()
    while synaptic.now() < t + 0.003 do end      -- node 2's write is the newer
    s.nodes[2].store:put_weights("x", 0, { 0, 2 })
    s:heal()
    assert.is_number(s:run_until_agreed(100))
    local a = s.nodes[1].store
    assert.same({ 0, 2 }, a:get_weights("x", 0):totable())
    assert.equal(1, #a:conflicts("x", 0))        -- { 1, 0 } lost to the newer write, kept
    a:put_weights("x", 0, { 5, 2 }, nil, { build_on_merge = true })
    -- built on { 0, 2 } only: { 1, 0 } is still a head, not superseded unseen
    assert.same({ 1, 0 }, a:conflicts("x", 0)[1].weights:totable())
    assert.is_number(s:run_until_agreed(100))
    for _ = 1, 4 do s:step() end
    for i = 1, 2 do
      assert.same({ 5, 2 }, s.nodes[i].store:get_weights("x", 0):totable())
      assert.equal(1, #s.nodes[i].store:conflicts("x", 0))
    end
    assert.equal(sim.fingerprint(a, { "x" }, 1), sim.fingerprint(s.nodes[2].store, { "x" }, 1))
    s:close()
  end)

  it("checks the flag", function()
    local store = assert(synaptic.open(helpers.tmpdir("bom") .. "/s"))
    assert.has_error(function() store:put_weights("x", 0, { 1 }, {}, { build_on_merge = 1 }) end)
    assert.has_error(function() store:put_weights("x", 0, { 1 }, {}, { other = true }) end)
    assert.equal(1, store:put_weights("x", 0, { 1 }, {}, { build_on_merge = true }))
    assert.equal(2, store:put_weights("x", 0, { 2 }, {}, { build_on_merge = true }))
    local hlc, origin = store:current_identity("x", 0)
    local _, _, info = store:get_weights("x", 0)
    assert.equal(info.hlc, hlc)
    assert.equal(store:origin(), origin)
    assert.is_nil(store:current_identity("x", 1))
    local e = store:weights_epoch()
    store:put_state("k", 1)
    assert.equal(e, store:weights_epoch())       -- not a weights change
    store:put_weights("x", 0, { 3 })
    assert.equal(e + 1, store:weights_epoch())
    store:close()
  end)
end)
