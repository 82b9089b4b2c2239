-- Causal weight history across three nodes (transport-free engines through
-- the simulator): the newest concurrent write wins, the merge strategy
-- keeps every node's learning, highest_version picks the longest history,
-- checkpoints restore exactly what they pinned, copies and restored backups
-- get their own origin, and filters lose nothing.
local synaptic = require "synaptic"
local helpers = require "helpers"
local sim = require "sim"

local FAST = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10 }

local function mesh(strategy, extra)
  local config = { conflict_resolution = strategy or "latest_timestamp" }
  for k, v in pairs(FAST) do config[k] = v end
  for k, v in pairs(extra or {}) do config[k] = v end
  return sim.new { n = 3, dir = helpers.tmpdir("causal"), seed = 7, degree = 2, config = config }
end

local function settle(s)
  assert.is_number(s:run_until_agreed(100), "did not converge")
  for _ = 1, 4 do s:step() end
end

local function alone(s) s:partition(function(i) return i end) end

-- wall-clock milliseconds are the HLC's high bits: a write after this is newer
local function later()
  local t = synaptic.now()
  while synaptic.now() < t + 0.003 do end
end

local function f32s(t) return synaptic.floats(t):tobytes() end

local function same_everywhere(s, expert, layer)
  local want = sim.fingerprint(s.nodes[1].store, { expert }, layer + 1)
  for i = 2, s.n do assert.equal(want, sim.fingerprint(s.nodes[i].store, { expert }, layer + 1)) end
end

describe("causal weight history", function()
  after_each(helpers.cleanup)

  it("latest_timestamp: the newest write wins however many versions the other side wrote", function()
    local s = mesh()
    local a, b = s.nodes[1].store, s.nodes[2].store
    a:put_weights("x", 0, { 1, 1 })
    settle(s)
    alone(s)
    a:put_weights("x", 0, { 2, 2 })
    a:put_weights("x", 0, { 3, 3 })
    later()
    b:put_weights("x", 0, { 9, 9 })        -- b had seen only v1; newest of all
    s:heal()
    settle(s)
    for i = 1, 3 do
      local st = s.nodes[i].store
      local w = st:get_weights("x", 0)
      assert.same({ 9, 9 }, w:totable(), "node " .. i)
      local c = st:conflicts("x", 0)
      assert.equal(1, #c, "node " .. i)
      assert.same({ 3, 3 }, c[1].weights:totable())   -- a's head, kept and listed
      assert.same({ 1, 2, 3, 4 }, st:weight_versions("x", 0))
    end
    same_everywhere(s, "x", 0)
    -- a write made after seeing both heads supersedes them: no conflict left
    s.nodes[3].store:put_weights("x", 0, { 5, 5 })
    settle(s)
    for i = 1, 3 do assert.same({}, s.nodes[i].store:conflicts("x", 0)) end
    s:close()
  end)

  it("merge, rule sum: concurrent training is combined as base + sum(head - base), identically everywhere", function()
    local s = mesh("merge", { merge_rule = "sum" })
    local base = { 0.5, 0.25, -1, 2 }
    s.nodes[1].store:put_weights("x", 0, base, { 0.5 }, { shape = { 2, 2 } })
    settle(s)
    alone(s)
    local deltas = { { 0.125, 0, 0, 0 }, { 0, -0.5, 0, 0 }, { 0, 0, 0.25, 0.25 } }
    for i = 1, 3 do
      local w = {}
      for j = 1, 4 do w[j] = base[j] + deltas[i][j] end
      s.nodes[i].store:put_weights("x", 0, w, { 0.5 + i }, { shape = { 2, 2 } })
    end
    s:heal()
    settle(s)
    local want_w, want_b = {}, 0.5 + (1 + 2 + 3)    -- biases: base 0.5 + sum of (i)
    for j = 1, 4 do want_w[j] = base[j] + deltas[1][j] + deltas[2][j] + deltas[3][j] end
    for i = 1, 3 do
      local st = s.nodes[i].store
      local w, b, info = st:get_weights("x", 0)
      assert.equal(f32s(want_w), w:tobytes(), "node " .. i)
      assert.equal(f32s { want_b }, b:tobytes())
      assert.matches("^base ", info.merge)
      assert.same({}, st:conflicts("x", 0))
    end
    same_everywhere(s, "x", 0)
    -- a write on top of the merge is an ordinary successor
    s.nodes[2].store:put_weights("x", 0, { 7, 7, 7, 7 }, { 1 }, { shape = { 2, 2 } })
    settle(s)
    for i = 1, 3 do assert.same({ 7, 7, 7, 7 }, s.nodes[i].store:get_weights("x", 0):totable()) end
    same_everywhere(s, "x", 0)
    s:close()
  end)

  it("merge: heads with no common ancestor are averaged, and say so", function()
    local s = mesh("merge")
    alone(s)
    s.nodes[1].store:put_weights("y", 1, { 1, 2 })
    s.nodes[2].store:put_weights("y", 1, { 3, 6 })
    s:heal()
    settle(s)
    for i = 1, 3 do
      local w, _, info = s.nodes[i].store:get_weights("y", 1)
      assert.same({ 2, 4 }, w:totable())
      assert.matches("^mean of 2 heads", info.merge)
    end
    same_everywhere(s, "y", 1)
    s:close()
  end)

  it("merge: heads of different shapes are not merged; the newest wins and the other is kept", function()
    local s = mesh("merge")
    alone(s)
    s.nodes[1].store:put_weights("z", 0, { 1, 2, 3 })
    later()
    s.nodes[2].store:put_weights("z", 0, { 4, 5 })
    s:heal()
    settle(s)
    for i = 1, 3 do
      local w, _, info = s.nodes[i].store:get_weights("z", 0)
      assert.same({ 4, 5 }, w:totable())
      assert.is_nil(info.merge)
      assert.equal(1, #s.nodes[i].store:conflicts("z", 0))
    end
    same_everywhere(s, "z", 0)
    s:close()
  end)

  it("highest_version: the head with the longest history wins, on every node", function()
    local s = mesh("highest_version")
    s.nodes[1].store:put_weights("x", 0, { 0 })
    settle(s)
    alone(s)
    for v = 1, 3 do s.nodes[1].store:put_weights("x", 0, { v }) end
    later()
    s.nodes[2].store:put_weights("x", 0, { 100 })   -- newer, but a shorter history
    s:heal()
    settle(s)
    for i = 1, 3 do assert.same({ 3 }, s.nodes[i].store:get_weights("x", 0):totable()) end
    same_everywhere(s, "x", 0)
    s:close()
  end)

  it("a checkpoint restores exactly the bytes that were current where it was made", function()
    local s = mesh()
    local a = s.nodes[1].store
    a:put_weights("x", 0, { 1 })
    settle(s)
    alone(s)
    a:put_weights("x", 0, { 2 })
    local cp = a:create_checkpoint { system_version = "a" }
    later()
    s.nodes[2].store:put_weights("x", 0, { 3 })      -- concurrent, and newer
    s:heal()
    settle(s)
    for i = 1, 3 do
      local st = s.nodes[i].store
      assert.same({ 3 }, st:get_weights("x", 0):totable())
      local pin = st:get_checkpoint(cp).pins[1]
      assert.same({ 2 }, st:get_weights("x", 0, { hlc = pin.hlc, origin = pin.origin }):totable())
      assert.is_true(st:restore_checkpoint(cp))
      assert.same({ 2 }, st:get_weights("x", 0):totable(), "node " .. i)
      assert.is_true((st:verify()))
    end
    s:close()
  end)
end)

describe("store identity", function()
  after_each(helpers.cleanup)

  local function carry(ea, eb, t)
    for step = 1, 6 do
      ea:tick(t + step); eb:tick(t + step)
      for _ = 1, 20 do
        local n = 0
        for _, m in ipairs(ea:outbox()) do n = n + 1; eb:receive(ea:node_id(), m.bytes) end
        for _, m in ipairs(eb:outbox()) do n = n + 1; ea:receive(eb:node_id(), m.bytes) end
        if n == 0 then break end
      end
    end
  end

  it("a copied directory and a restored backup take their own origin and sync with the original", function()
    local dir = helpers.tmpdir("ident")
    local a = assert(synaptic.open(dir .. "/a"))
    a:put_weights("x", 0, { 1 })
    assert(a:backup(dir .. "/backups"))
    local origin = a:origin()
    a:close()
    assert(os.execute(("cp -a %s %s"):format(helpers.shq(dir .. "/a"), helpers.shq(dir .. "/copy"))))
    assert(synaptic.restore_backup(dir .. "/backups", dir .. "/restored"))
    a = assert(synaptic.open(dir .. "/a"))
    assert.equal(origin, a:origin())                 -- the original keeps its identity
    for _, name in ipairs { "copy", "restored" } do
      local c = assert(synaptic.open(dir .. "/" .. name))
      assert.is_not.equal(origin, c:origin(), name)
      c:put_weights("x", 0, { name == "copy" and 2 or 3 })
      a:put_weights("x", 0, { 10 })
      local ea = synaptic.sync_engine(a, FAST)
      local ec = synaptic.sync_engine(c, FAST)
      ea:add_peer(ec:node_id()); ec:add_peer(ea:node_id())
      carry(ea, ec, 0)
      assert.same(a:weight_versions("x", 0), c:weight_versions("x", 0))
      assert.equal(a:get_weights("x", 0):tobytes(), c:get_weights("x", 0):tobytes())
      assert.equal(0, ea:stats().collisions)
      ea:close(); ec:close(); c:close()
    end
    a:close()
  end)
end)

describe("store identity after a restore in place", function()
  after_each(helpers.cleanup)

  it("a backup restored over its own directory still takes a new origin", function()
    local dir = helpers.tmpdir("ident2")
    local a = assert(synaptic.open(dir .. "/a"))
    a:put_weights("x", 0, { 1 })
    assert(a:backup(dir .. "/backups"))
    local origin = a:origin()
    a:put_weights("x", 0, { 2 })   -- peers may have seen this (seq 2) from the old store
    a:close()
    assert(synaptic.restore_backup(dir .. "/backups", dir .. "/a", { force = true }))
    local r = assert(synaptic.open(dir .. "/a"))
    assert.is_not.equal(origin, r:origin())
    local again = r:origin()
    r:close()
    r = assert(synaptic.open(dir .. "/a"))
    assert.equal(again, r:origin())   -- once, not at every open
    r:close()
  end)

  it("a restored backup has its own origin before any open for writing", function()
    local dir = helpers.tmpdir("ident3")
    local a = assert(synaptic.open(dir .. "/a"))
    a:put_weights("x", 0, { 1 })
    assert(a:backup(dir .. "/backups"))
    local origin = a:origin()
    a:close()
    assert(synaptic.restore_backup(dir .. "/backups", dir .. "/r"))
    local ro = assert(synaptic.open(dir .. "/r", { read_only = true }))
    local seen = ro:origin()
    ro:close()
    assert.is_not.equal(origin, seen)       -- read-only first: not the backed-up store's
    local rw = assert(synaptic.open(dir .. "/r"))
    assert.equal(seen, rw:origin())         -- and the same one a writer then uses
    assert.equal(1, rw:get_weights("x", 0)[1])
    rw:close()
  end)
end)

describe("filters", function()
  after_each(helpers.cleanup)

  it("what a node skipped while weight sync was off arrives once it is on; pins of remote weights are not damage", function()
    local s = mesh(nil, {})
    local a = s.nodes[1].store
    -- node 2 syncs without weights
    s.nodes[2].engine:close()
    local cfg = { enable_weight_sync = false, node_id = "n2" }
    for k, v in pairs(FAST) do cfg[k] = v end
    s.nodes[2].engine = synaptic.sync_engine(s.nodes[2].store, cfg)
    for _, j in ipairs { 1, 3 } do s.nodes[2].engine:add_peer("n" .. j) end
    a:put_weights("x", 0, { 1, 2 })
    a:put_weights("x", 1, { 3 })
    a:create_checkpoint { system_version = "pins weights node 2 lacks" }
    settle(s)
    local b = s.nodes[2].store
    assert.same({}, b:weight_versions("x", 0))
    assert.equal(1, #b:list_checkpoints())
    local ok, report = b:verify()
    assert.is_true(ok, report.problems[1] and report.problems[1].error)
    -- weight sync on again: the skipped records arrive
    s.nodes[2].engine:close()
    cfg.enable_weight_sync = true
    s.nodes[2].engine = synaptic.sync_engine(b, cfg)
    for _, j in ipairs { 1, 3 } do s.nodes[2].engine:add_peer("n" .. j) end
    for _ = 1, 12 do s:step() end
    assert.same({ 1 }, b:weight_versions("x", 0))
    assert.same({ 1, 2 }, b:get_weights("x", 0):totable())
    assert.same({ 3 }, b:get_weights("x", 1):totable())
    assert.equal(sim.fingerprint(a, { "x" }, 2), sim.fingerprint(b, { "x" }, 2))
    assert.is_true((b:verify()))
    s:close()
  end)
end)

describe("system state and metrics", function()
  after_each(helpers.cleanup)

  it("replicate: metric points end as the union with their origins, state keys last writer wins", function()
    local s = mesh()
    local a, b, c = s.nodes[1].store, s.nodes[2].store, s.nodes[3].store
    alone(s)
    a:record_metric("loss", 0.5, 100)
    b:record_metric("loss", 0.25, 101)
    b:record_metric("loss", 0.125, 102)
    a:put_state("mode", { by = "a" })
    later()
    c:put_state("mode", { by = "c" })          -- concurrent and newer: wins
    s:heal()
    settle(s)
    for i = 1, 3 do
      local st = s.nodes[i].store
      local pts = st:metrics("loss")
      assert.equal(3, #pts, "node " .. i)
      assert.same({ 100, 101, 102 }, { pts[1].timestamp, pts[2].timestamp, pts[3].timestamp })
      assert.equal(a:origin(), pts[1].origin)
      assert.equal(b:origin(), pts[3].origin)
      assert.same({ by = "c" }, st:get_state("mode"))
      assert.same({ "loss" }, st:metric_names())
      assert.is_true((st:verify()))
    end
    s:close()
  end)
end)
