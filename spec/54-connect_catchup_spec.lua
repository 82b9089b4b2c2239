-- Catch-up starts when a connection comes up (issue 17): a joining node's
-- first heartbeat and request go once its connection is up, not at the
-- next interval, and a connection that drops and comes back starts one
-- too. Timers here are an hour long, so only the connection can have
-- started the exchange. Loops are bounded by poll rounds, never by timing
-- asserts.
local synaptic = require "synaptic"
local helpers = require "helpers"

local open, until_ = helpers.small_store, helpers.poll_until

local HOUR = { heartbeat_interval_seconds = 3600, sync_interval_seconds = 3600, peer_timeout_seconds = 7200 }
local function conf(t) for k, v in pairs(HOUR) do t[k] = v end return t end

local function has(s, x, l, bytes)
  local w = s:get_weights(x, l)
  return w ~= nil and w:tobytes() == bytes
end

describe("catch-up at connect", function()
  after_each(helpers.cleanup)

  it("a node joining a peer gets what the peer holds without waiting for an interval", function()
    local a, b = open("a"), open("b")
    for l = 1, 8 do a:put_weights("model", l, synaptic.floats({ l, l + 1, l + 2 }), {}) end
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    local want = a:get_weights("model", 8):tobytes()
    -- B polls first: its first heartbeat and request meet a connection
    -- that is not up yet
    assert.is_true(until_({ nb, na }, function() return has(b, "model", 8, want) end, 500))
    for l = 1, 8 do assert.equal(a:get_weights("model", l):tobytes(), b:get_weights("model", l):tobytes()) end
    assert.equal(8, nb:stats().weights_received)
    na:close(); nb:close(); a:close(); b:close()
  end)

  it("a write made while the peer was away arrives when its connection comes back", function()
    local a, b = open("a"), open("b")
    a:put_weights("warm", 1, synaptic.floats({ 1 }), {})
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local addr = na:address()
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { addr } }))
    local warm = a:get_weights("warm", 1):tobytes()
    assert.is_true(until_({ na, nb }, function() return has(b, "warm", 1, warm) end, 500))
    -- A goes away; B keeps polling (its dealer sees the connection drop)
    na:close()
    until_({ nb }, nil, 25)
    a:put_weights("while_away", 1, synaptic.floats({ 7, 8, 9 }), {})
    local want = a:get_weights("while_away", 1):tobytes()
    -- A comes back on the same address, knowing nothing of B: only B's
    -- reconnect can start the exchange
    na = assert(synaptic.node(a, conf { node_id = "A", listen = addr }))
    assert.is_true(until_({ na, nb }, function() return has(b, "while_away", 1, want) end, 1000))
    na:close(); nb:close(); a:close(); b:close()
  end)
end)

-- A catch-up message with many writes of one layer merges its heads once,
-- after the last write (sn_replica_settle), not once per write: the same
-- bytes as a node that took the writes one message at a time. A process
-- that dies between the writes and that merge leaves the layer's current
-- write behind its heads; the next engine on the store puts it right
-- before anything else.
describe("catch-up merges a layer once", function()
  after_each(helpers.cleanup)

  local FAST = { sync_interval_seconds = 1, heartbeat_interval_seconds = 1, peer_timeout_seconds = 10,
                 conflict_resolution = "merge" }
  local function cfg(id) local t = { node_id = id }; for k, v in pairs(FAST) do t[k] = v end; return t end

  -- both engines at time t, then their messages carried until quiet
  local function pump(e1, e2, t)
    e1:tick(t); e2:tick(t)
    for _ = 1, 50 do
      local n = 0
      for _, m in ipairs(e1:outbox()) do n = n + 1; e2:receive(e1:node_id(), m.bytes) end
      for _, m in ipairs(e2:outbox()) do n = n + 1; e1:receive(e2:node_id(), m.bytes) end
      if n == 0 then return end
    end
  end

  -- two writers of one layer, concurrent, each with a history of its own
  local function two_writers()
    local a, b = open("a"), open("b")
    local base = { 1, 2, 3, 4 }
    a:put_weights("x", 0, base, {})
    local ea, eb = synaptic.sync_engine(a, cfg("A")), synaptic.sync_engine(b, cfg("B"))
    ea:add_peer("B"); eb:add_peer("A")
    pump(ea, eb, 1)
    for i = 1, 6 do
      a:put_weights("x", 0, { 1 + i, 2, 3, 4 }, {})
      b:put_weights("x", 0, { 1, 2, 3 + i, 4 }, {})
    end
    pump(ea, eb, 3); pump(ea, eb, 5)
    assert.same(a:get_weights("x", 0):totable(), b:get_weights("x", 0):totable())
    ea:close(); eb:close()
    return a, b
  end

  -- a third store joins one peer and takes everything in few messages
  local function join(a, skip)
    local c = open("c")
    local ea, ec = synaptic.sync_engine(a, cfg("A")), synaptic.sync_engine(c, cfg("C"))
    ea:add_peer("C"); ec:add_peer("A")
    if skip then ec:_skip_settle(true) end
    for t = 1, 4 do pump(ea, ec, t) end
    ea:close(); ec:close()
    return c
  end

  it("to the bytes a node taking the writes one by one holds", function()
    local a, b = two_writers()
    local c = join(a)
    local want = a:get_weights("x", 0):tobytes()
    assert.equal(want, c:get_weights("x", 0):tobytes())
    local _, _, info = c:get_weights("x", 0)
    assert.matches("^base ", info.merge)
    a:close(); b:close(); c:close()
  end)

  it("and after a crash before that merge, the next engine settles the layer first", function()
    local a, b = two_writers()
    local c = join(a, true)
    local want = a:get_weights("x", 0):tobytes()
    local before = c:get_weights("x", 0)            -- the crash left it behind its heads
    assert.is_true(before == nil or before:tobytes() ~= want)
    local ec = synaptic.sync_engine(c, cfg("C"))
    assert(ec:tick(100))
    assert.equal(want, c:get_weights("x", 0):tobytes())
    ec:close()
    a:close(); b:close(); c:close()
  end)
end)
