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
