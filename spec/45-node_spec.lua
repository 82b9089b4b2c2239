-- ZeroMQ nodes on loopback: replication both ways, heartbeats, garbage on
-- the port. Loops are bounded by iterations, never by timing asserts.
local synaptic = require "synaptic"
local helpers = require "helpers"

local conf, open, until_ = helpers.p2p_conf, helpers.small_store, helpers.poll_until

local function same_weights(s1, s2, x, l)
  local w1 = s1:get_weights(x, l)
  local w2 = s2:get_weights(x, l)
  return w1 ~= nil and w2 ~= nil and w1:tobytes() == w2:tobytes()
end

describe("node", function()
  after_each(helpers.cleanup)

  it("listens on loopback, reports its address, closes idempotently", function()
    local s = open("n")
    local n = assert(synaptic.node(s, conf { node_id = "solo", listen = "tcp://127.0.0.1:0" }))
    assert.matches("^tcp://127%.0%.0%.1:%d+$", n:address())
    assert.matches("synaptic.node %(tcp://127", tostring(n))
    assert.is_true(n:poll(0))
    assert.is_true(n:close())
    assert.is_true(n:close())
    assert.equal("synaptic.node (closed)", tostring(n))
    assert.has_error(function() n:poll() end, "attempt to use a closed node")
    s:close()
  end)

  it("refuses a non-loopback listen without CURVE", function()
    local s = open("n")
    assert.has_error(function() synaptic.node(s, { listen = "tcp://0.0.0.0:0" }) end)
    s:close()
  end)

  it("replicates every record kind both ways between two nodes, one of them not listening", function()
    local a, b = open("a"), open("b")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    assert.is_nil(nb:address())
    a:put_weights("x", 0, { 1, 2, 3 }, { 0.5 })
    b:put_weights("y", 1, { 4, 5 }, {})
    b:put_config { expert_id = "x", domain = "coding", parameter_count = 3, learning_rate = 0.1, architecture = { 3 } }
    local cp = a:create_checkpoint { system_version = "1" }
    assert.is_true(until_({ na, nb }, function()
      return same_weights(a, b, "x", 0) and same_weights(a, b, "y", 1) and a:get_config("x") ~= nil
         and #b:list_checkpoints() == 1
    end))
    assert.equal(cp, b:list_checkpoints()[1])
    assert.equal("coding", a:get_config("x").domain)
    local sa, sb = na:stats(), nb:stats()
    assert.is_true(sa.weights_sent >= 1 and sb.weights_received >= 1)
    assert.is_true(sb.configs_sent >= 1 and sa.configs_received >= 1)
    assert.is_true(sa.checkpoints_sent >= 1 and sb.checkpoints_received >= 1)
    assert.is_true(sa.bytes_sent > 0 and sb.bytes_received > 0 and sa.sync_rounds > 0)
    local ids = {}
    for _, p in ipairs(na:peers()) do ids[p.id] = p.state end
    assert.equal("alive", ids.B)
    assert.equal(na:address(), nb:peers()[1].endpoint)
    -- concurrent writes to one layer: one winner on both, the loser kept on both
    a:put_weights("z", 0, { 1 }, {})
    b:put_weights("z", 0, { 2 }, {})
    assert.is_true(until_({ na, nb }, function()
      return same_weights(a, b, "z", 0) and #a:conflicts("z", 0) == 1 and #b:conflicts("z", 0) == 1
    end))
    assert.equal(a:conflicts("z", 0)[1].weights:tobytes(), b:conflicts("z", 0)[1].weights:tobytes())
    na:close(); nb:close(); a:close(); b:close()
  end)

  it("relays through a middle node (three nodes in a line)", function()
    local a, b, c = open("a"), open("b"), open("c")
    local nb = assert(synaptic.node(b, conf { node_id = "B", listen = "tcp://127.0.0.1:0" }))
    local na = assert(synaptic.node(a, conf { node_id = "A", peers = { nb:address() } }))
    local nc = assert(synaptic.node(c, conf { node_id = "C", peers = { nb:address() } }))
    a:put_weights("x", 0, { 7, 7 }, {})
    assert.is_true(until_({ na, nb, nc }, function() return same_weights(a, c, "x", 0) end))
    na:close(); nb:close(); nc:close(); a:close(); b:close(); c:close()
  end)

  it("marks a peer that closes left at once, and alive again when it is back", function()
    local a, b = open("a"), open("b")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    local function state() local p = na:peers()[1]; return p and p.state end
    assert.is_true(until_({ na, nb }, function() return state() == "alive" end))
    b:close()        -- the store first: the leaving heartbeat reads nothing of it
    nb:close()
    -- only a leaving heartbeat makes a peer "left" (silence makes it suspect,
    -- then dead), so the bound can be generous for a loaded machine
    assert.is_true(until_({ na }, function() return state() == "left" end, 250))
    assert.equal("left", state())
    b = open("b")
    nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    assert.is_true(until_({ na, nb }, function() return state() == "alive" end))
    na:close(); nb:close(); a:close(); b:close()
  end)

  it("a node refused for max_peers is told so, reports why, and gets in when a slot frees", function()
    local a, b, c = open("a"), open("b"), open("c")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0", max_peers = 1 }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    assert.is_true(until_({ na, nb }, function() return #na:peers() == 1 end))
    local nc = assert(synaptic.node(c, conf { node_id = "C", peers = { na:address() } }))
    local function c_sees() return nc:peers()[1] end
    assert.is_true(until_({ na, nb, nc }, function() return c_sees().state == "refused" end))
    assert.equal("max_peers (1) reached", c_sees().reason)
    assert.is_true(na:stats().refusals_sent >= 1)
    a:put_weights("x", 0, { 1 }, {})
    until_({ na, nb, nc }, nil, 50)
    assert.is_nil(c:get_weights("x", 0))          -- nothing but the refusal crossed
    assert.equal("refused", c_sees().state)
    -- B goes; once A forgets it (left, then three timeouts) C takes the slot
    nb:close(); b:close()
    assert.is_true(until_({ na, nc }, function() return c:get_weights("x", 0) ~= nil end, 2000))
    assert.equal("alive", c_sees().state)
    assert.is_nil(c_sees().reason)
    na:close(); nc:close(); a:close(); c:close()
  end)

  it("max_send_bytes_per_second holds within one large record (in chunks)", function()
    local a, b = open("a"), open("b")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0",
                                              max_send_bytes_per_second = 200000 }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    assert.is_true(until_({ na, nb }, function() return #na:peers() == 1 end))
    local t0 = synaptic.now()
    a:put_weights("big", 0, helpers.weights(200000, 3), {})   -- about 670 KB stored
    assert.is_true(until_({ na, nb }, function() return same_weights(a, b, "big", 0) end, 5000))
    -- one second's burst, then 200 KB/s: not before about 2.3 s (a lower
    -- bound only: a loaded machine is slower, never faster)
    assert.is_true(synaptic.now() - t0 >= 1.5, ("%.2f s"):format(synaptic.now() - t0))
    assert.is_true(na:stats().chunks_sent >= 10)
    na:close(); nb:close(); a:close(); b:close()
  end)

  it("marks a peer that falls silent suspect, then dead", function()
    local a, b = open("a"), open("b")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    local function state() local p = na:peers()[1]; return p and p.state end
    assert.is_true(until_({ na, nb }, function() return state() == "alive" end))
    -- B stops polling (a hung or killed process): it says nothing more
    assert.is_true(until_({ na }, function() return state() == "suspect" end, 200))
    assert.is_true(until_({ na }, function() return state() == "dead" end, 200))
    na:close(); nb:close(); a:close(); b:close()
  end)

  it("drops garbage from a ZeroMQ peer and keeps working", function()
    local a = open("a")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    a:put_weights("x", 0, { 1 }, {})
    local before = a:get_weights("x", 0):tobytes()
    -- a raw TCP client writing junk at the port: ZeroMQ's handshake fails
    -- and nothing reaches the engine
    local host, port = na:address():match("tcp://([%d%.]+):(%d+)")
    os.execute(("bash -c \"exec 3<>/dev/tcp/%s/%s && head -c 4096 /dev/urandom >&3; exec 3>&-\" 2>/dev/null")
               :format(host, port))
    for _ = 1, 20 do na:poll(5) end
    assert.equal(before, a:get_weights("x", 0):tobytes())
    assert.is_true((a:verify()))
    assert.is_true(na:poll(0))
    na:close(); a:close()
  end)
end)
