-- Peer discovery: heartbeats carry a sample of dialable peers, and a node
-- dials the ones it learns of, up to max_peers (under CURVE only keys it
-- authorizes). Real ZeroMQ nodes on loopback; loops bounded by rounds.
local synaptic = require "synaptic"
local helpers = require "helpers"

local conf, open, until_ = helpers.p2p_conf, helpers.small_store, helpers.poll_until

local function same_weights(s1, s2, x, l)
  local w1, w2 = s1:get_weights(x, l), s2:get_weights(x, l)
  return w1 ~= nil and w2 ~= nil and w1:tobytes() == w2:tobytes()
end

-- The peer of node whose node id is id, or nil.
local function peer_named(node, id)
  for _, p in ipairs(node:peers()) do
    if p.node_id == id or p.id == id then return p end
  end
end

local function node_ids(node)
  local seen, dup = {}, false
  for _, p in ipairs(node:peers()) do
    local id = p.node_id or p.id
    if seen[id] then dup = true end
    seen[id] = true
  end
  return seen, dup
end

-- ---- forging heartbeats (spec/support/wire.lua) -------------------------------

local wire = require "wire"

-- A Heartbeat (type 12) from `from` naming `peers` ({ id, endpoint, public }).
local function heartbeat(from, peers)
  local list = {}
  for i, p in ipairs(peers) do
    local m = { [wire.MAP] = { "id", "endpoint" }, id = p[1], endpoint = p[2] }
    if p[3] then m[wire.MAP][3], m.public = "public", p[3] end
    list[i] = m
  end
  local meta = wire.pack { 2, from, 12345, wire.NIL, list }
  return wire.pack { 1, 12, 0, 0, wire.crc32(meta), wire.bin(meta), wire.bin("") }
end

describe("discovery", function()
  after_each(helpers.cleanup)

  it("refuses a heartbeat whose sample is too long or malformed, and takes a good one", function()
    local b = open("b")
    local eb = synaptic.sync_engine(b, { node_id = "B" })
    eb:add_peer("A")
    local good = { "A", "tcp://127.0.0.1:7000", ("k"):rep(40) }
    local many = {}
    for i = 1, 17 do many[i] = { "n" .. i, "tcp://127.0.0.1:" .. (7000 + i) } end
    local bad = {
      many,
      { { "x", ("e"):rep(256) } },
      { { "x", "" } },
      { { "x", "tcp://a\0b:1" } },
      { { "x", "tcp://127.0.0.1:1", ("k"):rep(39) } },
      { { "x", "tcp://127.0.0.1:1", ("k"):rep(41) } },
    }
    for i, sample in ipairs(bad) do
      local ok, err = eb:receive("A", heartbeat("A", sample))
      assert.is_nil(ok, "sample " .. i)
      assert.matches("rejected", err)
    end
    assert.equal(#bad, eb:stats().rejected)
    assert.is_nil(eb:peers()[1].endpoint)
    table.remove(many)
    assert.is_true(eb:receive("A", heartbeat("A", many)))
    assert.is_true(eb:receive("A", heartbeat("A", { good })))
    assert.equal("tcp://127.0.0.1:7000", eb:peers()[1].endpoint)
    assert.equal(good[3], eb:peers()[1].public)
    assert.equal(#bad, eb:stats().rejected)
    eb:close(); b:close()
  end)

  it("a heartbeat tells where its sender listens (engines, no sockets)", function()
    local a, b = open("a"), open("b")
    local ea = synaptic.sync_engine(a, { node_id = "A" })
    local eb = synaptic.sync_engine(b, { node_id = "B" })
    local key = ("k"):rep(40)
    assert.has_error(function() ea:advertise(("x"):rep(256)) end)
    assert.has_error(function() ea:advertise("tcp://127.0.0.1:7000", "short") end)
    assert.is_true(ea:advertise("tcp://127.0.0.1:7000", key))
    ea:add_peer("B"); eb:add_peer("A")
    assert.is_true(ea:tick(1))
    for _, m in ipairs(ea:outbox()) do assert(eb:receive("A", m.bytes)) end
    local p = eb:peers()[1]
    assert.equal("tcp://127.0.0.1:7000", p.endpoint)
    assert.equal(key, p.public)
    assert.equal("A", p.node_id)
    assert.is_false(p.learned)
    -- not advertising any more: later heartbeats carry no address
    assert.is_true(ea:advertise())
    ea:close(); eb:close(); a:close(); b:close()
  end)

  it("a node given one seed comes to know the chain behind it, and keeps syncing without the seed", function()
    local a, b, c = open("a"), open("b"), open("c")
    local na = assert(synaptic.node(a, conf { discovery = true, node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { discovery = true, node_id = "B", listen = "tcp://127.0.0.1:0", peers = { na:address() } }))
    local nc = assert(synaptic.node(c, conf { discovery = true, node_id = "C", peers = { nb:address() } }))
    local nodes = { na, nb, nc }
    assert.is_true(until_(nodes, function()
      local p = peer_named(nc, "A")
      return p ~= nil and p.state == "alive"
    end))
    local pa = peer_named(nc, "A")
    assert.is_true(pa.learned)
    assert.equal(na:address(), pa.endpoint)
    assert.equal(na:address(), pa.id)
    assert.is_false(peer_named(nc, "B").learned)
    assert.is_true(nc:stats().learned >= 1)
    -- C does not listen: nobody is told of it, so A knows it only inbound
    assert.is_true(until_(nodes, function() return peer_named(na, "C") ~= nil end))
    assert.is_nil(peer_named(na, "C").endpoint)
    -- B leaves: C drops it and B closes; A's writes still reach C directly
    assert.is_true(nc:disconnect(nb:address()))
    assert.is_nil(peer_named(nc, "B"))
    nb:close()
    a:put_weights("x", 0, { 1, 2, 3 }, {})
    assert.is_true(until_({ na, nc }, function() return same_weights(a, c, "x", 0) end))
    c:put_weights("y", 0, { 4 }, {})
    assert.is_true(until_({ na, nc }, function() return same_weights(a, c, "y", 0) end))
    assert.is_nil(peer_named(nc, "B"))
    na:close(); nc:close(); a:close(); b:close(); c:close()
  end)

  it("listening nodes that learn of each other keep one connection per pair", function()
    local a, b, c = open("a"), open("b"), open("c")
    local na = assert(synaptic.node(a, conf { discovery = true, node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { discovery = true, node_id = "B", listen = "tcp://127.0.0.1:0", peers = { na:address() } }))
    local nc = assert(synaptic.node(c, conf { discovery = true, node_id = "C", listen = "tcp://127.0.0.1:0", peers = { nb:address() } }))
    local nodes = { na, nb, nc }
    assert.is_true(until_(nodes, function()
      local ia, ic = node_ids(na), node_ids(nc)
      return ia.C and ic.A and peer_named(na, "C").state == "alive" and peer_named(nc, "A").state == "alive"
    end))
    -- C's listening address travelled from C through B to A
    until_(nodes, nil, 100)
    for _, n in ipairs(nodes) do
      local ids, dup = node_ids(n)
      assert.is_false(dup, n:node_id() .. " has two peers for one node")
      for _, other in ipairs { "A", "B", "C" } do
        if other ~= n:node_id() then assert.is_true(ids[other], n:node_id() .. " lacks " .. other) end
      end
      assert.is_nil(ids[n:node_id()], n:node_id() .. " dialed itself")
    end
    na:close(); nb:close(); nc:close(); a:close(); b:close(); c:close()
  end)

  it("does not dial past max_peers, and never a peer it dropped", function()
    local h = open("h")
    local nh = assert(synaptic.node(h, conf { discovery = true, node_id = "H", listen = "tcp://127.0.0.1:0" }))
    local nodes, stores = { nh }, { h }
    for i = 1, 4 do
      stores[i + 1] = open("l" .. i)
      nodes[i + 1] = assert(synaptic.node(stores[i + 1], conf { discovery = true, node_id = "L" .. i, listen = "tcp://127.0.0.1:0",
        peers = { nh:address() }, max_peers = i == 1 and 2 or 10 }))
    end
    local capped, most = nodes[2], 0
    assert.is_true(until_(nodes, function()
      most = math.max(most, #capped:peers())
      local ids = node_ids(nodes[5])
      return ids.L2 and ids.L3 and ids.H
    end))
    until_(nodes, function() most = math.max(most, #capped:peers()) end, 100)
    assert.is_true(most <= 2, "L1 had " .. most .. " peers with max_peers = 2")
    -- whichever of L3 and L4 dialed the other drops it: it does not dial it again
    local p34, p43 = peer_named(nodes[4], "L4"), peer_named(nodes[5], "L3")
    local dialer, other = nodes[4], "L4"
    if not (p34 and p34.learned) then dialer, other = nodes[5], "L3" end
    local p = assert(peer_named(dialer, other))
    assert.is_true(p.learned, "neither of L3, L4 dialed the other: " .. tostring(p43 and p43.learned))
    assert.is_true(dialer:disconnect(p.id))
    assert.is_false(dialer:disconnect(p.id))
    local again = false
    until_(nodes, function()
      local q = peer_named(dialer, other)
      again = again or (q ~= nil and q.learned)
    end, 100)
    assert.is_false(again)
    for _, n in ipairs(nodes) do n:close() end
    for _, s in ipairs(stores) do s:close() end
  end)

  it("under CURVE dials a learned peer only when it authorizes its key", function()
    local ka, sa = synaptic.keypair()
    local kb, sb = synaptic.keypair()
    local kc, sc = synaptic.keypair()
    local kd, sd = synaptic.keypair()
    local a, b, c, d = open("a"), open("b"), open("c"), open("d")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0",
      curve = { public = ka, secret = sa, authorized = { kb, kc, kd } } }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", listen = "tcp://127.0.0.1:0",
      peers = { { endpoint = na:address(), public = ka } },
      curve = { public = kb, secret = sb, authorized = { ka, kc, kd } } }))
    -- C does not authorize A; D does
    local nc = assert(synaptic.node(c, conf { node_id = "C",
      peers = { { endpoint = nb:address(), public = kb } },
      curve = { public = kc, secret = sc, authorized = { kb } } }))
    local nd = assert(synaptic.node(d, conf { node_id = "D",
      peers = { { endpoint = nb:address(), public = kb } },
      curve = { public = kd, secret = sd, authorized = { kb, ka } } }))
    local nodes = { na, nb, nc, nd }
    assert.is_true(until_(nodes, function()
      local p = peer_named(nd, "A")
      return p ~= nil and p.state == "alive"
    end, 400))
    assert.equal(ka, peer_named(nd, "A").public)
    assert.equal(kb, peer_named(nd, "B").public)
    until_(nodes, nil, 60)
    assert.is_nil(peer_named(nc, "A"))
    assert.equal(0, nc:stats().learned)
    -- C still gets A's writes, through B
    a:put_weights("x", 0, { 9 }, {})
    assert.is_true(until_(nodes, function() return same_weights(a, c, "x", 0) and same_weights(a, d, "x", 0) end, 400))
    for _, n in ipairs(nodes) do n:close() end
    a:close(); b:close(); c:close(); d:close()
  end)
end)
