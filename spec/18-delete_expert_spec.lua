-- store:delete_expert: every version of an expert's weights and its config
-- go in one batch, as a tombstone in each layer's causal history that
-- replicates; a checkpoint that pinned the expert still restores it; a
-- write made concurrently with the delete survives it everywhere.
local synaptic = require "synaptic"
local helpers = require "helpers"
local sim = require "sim"

local CFG = { expert_id = "x", domain = "d", parameter_count = 4,
              learning_rate = 0.1, architecture = { 2, 2 } }

local function open()
  return assert(synaptic.open(helpers.tmpdir("delete_expert") .. "/db"))
end

local function populated()
  local st = open()
  for l = 0, 1 do
    st:put_weights("x", l, { 1, 2 })
    st:put_weights("x", l, { 3, 4 })
  end
  st:put_config(CFG)
  st:put_weights("y", 0, { 5 })
  return st
end

-- pinned: a checkpoint pins versions, which stay held (and listed)
local function gone(st, pinned)
  for l = 0, 1 do
    assert.is_nil((st:get_weights("x", l)))
    if not pinned then assert.same({}, st:weight_versions("x", l)) end
  end
  assert.is_nil((st:get_config("x")))
  if not pinned then assert.same({}, st:layers("x")) end
end

describe("store:delete_expert", function()
  after_each(helpers.cleanup)

  it("deletes every version and the config, and leaves other experts alone", function()
    local st = populated()
    assert.is_true(st:delete_expert("x"))
    gone(st)
    assert.same({ "y" }, st:list_experts())
    assert.same({ 5 }, st:get_weights("y", 0):totable())
    assert.is_true((st:verify()))
    assert.is_false(st:delete_expert("x"))      -- nothing left: not an error
    assert.is_false(st:delete_expert("never"))
    -- the expert can be written again, on top of its tombstone
    st:put_weights("x", 0, { 7 })
    assert.same({ 7 }, st:get_weights("x", 0):totable())
    assert.is_true((st:verify()))
    st:close()
  end)

  it("raises on a bad id", function()
    local st = open()
    assert.has_error(function() st:delete_expert() end)
    assert.has_error(function() st:delete_expert("") end)
    st:close()
  end)

  it("works in a batch, with writes of the same expert before and after it", function()
    local st = populated()
    assert.is_true(st:batch(function(b)
      b:put_weights("x", 0, { 8, 8 })
      b:delete_expert("x")
    end))
    gone(st)
    st:batch(function(b)
      b:put_weights("x", 2, { 1 })
      b:delete_expert("x")
      b:put_weights("x", 3, { 6 })
    end)
    assert.is_nil((st:get_weights("x", 2)))
    assert.same({ 6 }, st:get_weights("x", 3):totable())
    assert.same({ 3 }, st:layers("x"))
    assert.is_true((st:verify()))
    st:close()
  end)

  it("a failing batch deletes nothing", function()
    local st = populated()
    assert.has_error(function()
      st:batch(function(b)
        b:delete_expert("x")
        error("stop")
      end)
    end, "stop")
    assert.same({ 3, 4 }, st:get_weights("x", 1):totable())
    assert.same({ 1, 2 }, st:weight_versions("x", 0))
    assert.equal("d", st:get_config("x").domain)
    st:close()
  end)

  it("a checkpoint that pinned the expert still restores it", function()
    local st = populated()
    local cp = st:create_checkpoint { system_version = "before" }
    st:put_weights("x", 0, { 9, 9 })               -- not pinned: goes
    assert.is_true(st:delete_expert("x"))
    gone(st, true)
    assert.same({ 2 }, st:weight_versions("x", 0))  -- the pinned one, by number
    assert.same({ 3, 4 }, st:get_weights("x", 0, 2):totable())
    assert.is_true((st:verify()))
    assert.is_true(st:restore_checkpoint(cp))
    assert.same({ 3, 4 }, st:get_weights("x", 0):totable())
    assert.same({ 3, 4 }, st:get_weights("x", 1):totable())
    assert.is_true((st:verify()))
    st:close()
  end)

  it("a salvaged copy keeps the pinned versions but not the deleted expert", function()
    local dir = helpers.tmpdir("delete_salvage")
    local st = assert(synaptic.open(dir .. "/db"))
    st:put_weights("x", 0, { 1, 2 })
    st:create_checkpoint { system_version = "pin" }
    st:delete_expert("x")
    st:close()
    assert(synaptic.salvage(dir .. "/db", dir .. "/copy"))
    local copy = assert(synaptic.open(dir .. "/copy"))
    assert.is_nil((copy:get_weights("x", 0)))
    assert.same({ 1 }, copy:weight_versions("x", 0))
    copy:close()
  end)
end)

describe("delete_expert across peers", function()
  after_each(helpers.cleanup)

  local FAST = { sync_interval_seconds = 2, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10 }

  local function mesh()
    return sim.new { n = 3, dir = helpers.tmpdir("delete_mesh"), seed = 11, degree = 2, config = FAST }
  end

  local function settle(s)
    assert.is_number(s:run_until_agreed(100), "did not converge")
    for _ = 1, 4 do s:step() end
  end

  local function converged(s)
    local want = sim.fingerprint(s.nodes[1].store, { "x", "y" }, 2)
    for i = 2, s.n do assert.equal(want, sim.fingerprint(s.nodes[i].store, { "x", "y" }, 2), "node " .. i) end
  end

  it("a delete on one node reaches every node", function()
    local s = mesh()
    local a = s.nodes[1].store
    for l = 0, 1 do a:put_weights("x", l, { l, 1 }) end
    a:put_config(CFG)
    s.nodes[2].store:put_weights("x", 0, { 2, 2 })
    s.nodes[3].store:put_weights("y", 0, { 3 })
    settle(s)
    assert.is_true(s.nodes[2].store:delete_expert("x"))
    settle(s)
    for i = 1, 3 do
      local st = s.nodes[i].store
      gone(st)
      assert.same({ 3 }, st:get_weights("y", 0):totable(), "node " .. i)
      assert.is_true((st:verify()), "node " .. i)
    end
    converged(s)
    s:close()
  end)

  it("a write made concurrently with the delete survives it everywhere", function()
    local s = mesh()
    local a, b = s.nodes[1].store, s.nodes[2].store
    a:put_weights("x", 0, { 1 })
    a:put_weights("x", 1, { 1 })
    settle(s)
    s:partition(function(i) return i end)
    a:delete_expert("x")
    b:put_weights("x", 0, { 4 })                   -- b had not seen the delete
    b:put_weights("x", 0, { 5 })
    s:heal()
    settle(s)
    for i = 1, 3 do
      local st = s.nodes[i].store
      assert.same({ 5 }, st:get_weights("x", 0):totable(), "node " .. i)
      assert.is_nil((st:get_weights("x", 1)), "node " .. i)
      assert.is_true((st:verify()), "node " .. i)
    end
    converged(s)
    s:close()
  end)
end)
