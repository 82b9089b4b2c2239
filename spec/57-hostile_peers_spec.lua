-- A neighbour that breaks you, the peer table's side (issue 19): forged
-- heartbeats naming endpoints that never answer, or answer as someone
-- else, take no peer slots, pin no more than a few file descriptors, and
-- never undo node:disconnect; without CURVE a node dials nothing a
-- heartbeat names unless the user turns discovery on. Real ZeroMQ nodes
-- on loopback; a forger sends bytes through a test hook.
local synaptic = require "synaptic"
local helpers = require "helpers"
local wire = require "wire"

local conf, open, until_ = helpers.p2p_conf, helpers.small_store, helpers.poll_until

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

-- 16 endpoints nobody listens on (a closed loopback port each), batch k.
local function bogus(k, key)
  local t = {}
  for i = 1, 16 do t[i] = { ("bogus-%d-%d"):format(k, i), ("tcp://127.0.0.1:%d"):format(1 + k * 16 + i), key } end
  return t
end

local function peer_named(node, id)
  for _, p in ipairs(node:peers()) do
    if p.node_id == id or p.id == id then return p end
  end
end

local function has_bogus(node)
  for _, p in ipairs(node:peers()) do
    if (p.node_id or ""):match("^bogus") then return true end
  end
  return false
end

local function same_weights(s1, s2, x, l)
  local w1, w2 = s1:get_weights(x, l), s2:get_weights(x, l)
  return w1 ~= nil and w2 ~= nil and w1:tobytes() == w2:tobytes()
end

-- File descriptors this process holds now.
local function fd_count()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return #helpers.command_lines("ls /proc/" .. pid .. "/fd")
end

describe("hostile heartbeats", function()
  after_each(helpers.cleanup)

  it("endpoints a forger names take no peer slot: a configured peer still gets its writes through", function()
    local v, f, l = open("v"), open("f"), open("l")
    local nv = assert(synaptic.node(v, conf { node_id = "V", listen = "tcp://127.0.0.1:0", discovery = true, max_peers = 4 }))
    local nf = assert(synaptic.node(f, conf { node_id = "F", peers = { nv:address() } }))
    assert.is_true(until_({ nv, nf }, function() return peer_named(nv, "F") ~= nil end))
    local k = 0
    local function forge() k = k + 1; assert(nf:_send_raw(nv:address(), heartbeat("F", bogus(k)))) end
    for _ = 1, 20 do forge(); until_({ nv, nf }, nil, 5) end
    assert.is_false(has_bogus(nv))
    local nl = assert(synaptic.node(l, conf { node_id = "L", peers = { nv:address() } }))
    for i = 1, 20 do l:put_weights("w" .. i, 0, { i }, {}) end
    local nodes = { nv, nf, nl }
    assert.is_true(until_(nodes, function()
      forge()
      return same_weights(v, l, "w20", 0) and same_weights(v, l, "w1", 0)
    end, 400))
    assert.is_false(has_bogus(nv))
    assert.is_true(#nv:peers() <= 4)
    assert.is_true(until_(nodes, function() return nv:stats().candidates_refused > 0 end, 400))
    nv:close(); nf:close(); nl:close(); v:close(); f:close(); l:close()
  end)

  it("under CURVE, a forger with an authorized key naming bogus endpoints does not lock a configured peer out", function()
    local kv, sv = synaptic.keypair()
    local kf, sf = synaptic.keypair()
    local kl, sl = synaptic.keypair()
    local v, f, l = open("v"), open("f"), open("l")
    local nv = assert(synaptic.node(v, conf { node_id = "V", listen = "tcp://127.0.0.1:0", max_peers = 4,
      curve = { public = kv, secret = sv, authorized = { kf, kl } } }))
    local to_v = { { endpoint = nv:address(), public = kv } }
    local nf = assert(synaptic.node(f, conf { node_id = "F", peers = to_v, curve = { public = kf, secret = sf } }))
    assert.is_true(until_({ nv, nf }, function() return peer_named(nv, "F") ~= nil end, 400))
    local k = 0
    local function forge() k = k + 1; assert(nf:_send_raw(nv:address(), heartbeat("F", bogus(k, kf)))) end
    for _ = 1, 20 do forge(); until_({ nv, nf }, nil, 5) end
    local nl = assert(synaptic.node(l, conf { node_id = "L", peers = to_v, curve = { public = kl, secret = sl } }))
    for i = 1, 20 do l:put_weights("w" .. i, 0, { i }, {}) end
    local nodes = { nv, nf, nl }
    assert.is_true(until_(nodes, function()
      forge()
      return same_weights(v, l, "w20", 0) and same_weights(v, l, "w1", 0)
    end, 600))
    assert.is_false(has_bogus(nv))
    assert.is_true(nv:stats().learned >= 1)     -- discovery is on under CURVE, and dialed some
    nv:close(); nf:close(); nl:close(); v:close(); f:close(); l:close()
  end)

  it("a learned endpoint that answers as another id than it was named with is never a peer", function()
    local v, f, r = open("v"), open("f"), open("r")
    local nv = assert(synaptic.node(v, conf { node_id = "V", listen = "tcp://127.0.0.1:0", discovery = true }))
    local nr = assert(synaptic.node(r, conf { node_id = "R", listen = "tcp://127.0.0.1:0" }))
    local nf = assert(synaptic.node(f, conf { node_id = "F", peers = { nv:address() } }))
    local nodes = { nv, nr, nf }
    assert.is_true(until_(nodes, function() return peer_named(nv, "F") ~= nil end))
    -- R's address, claimed for the id "Q"
    assert(nf:_send_raw(nv:address(), heartbeat("F", { { "Q", nr:address() } })))
    assert.is_true(until_(nodes, function() return nv:stats().candidates_refused >= 1 end, 500))
    assert.is_nil(peer_named(nv, "Q"))
    assert.is_nil(peer_named(nv, nr:address()))
    nv:close(); nr:close(); nf:close(); v:close(); f:close(); r:close()
  end)

  it("forged heartbeats pin a bounded number of file descriptors, whatever max_peers", function()
    local v, f = open("v"), open("f")
    local nv = assert(synaptic.node(v, conf { node_id = "V", listen = "tcp://127.0.0.1:0", discovery = true, max_peers = 2000 }))
    local nf = assert(synaptic.node(f, conf { node_id = "F", peers = { nv:address() } }))
    assert.is_true(until_({ nv, nf }, function() return peer_named(nv, "F") ~= nil end))
    until_({ nv, nf }, nil, 20)
    local before, most = fd_count(), 0
    for k = 1, 150 do
      assert(nf:_send_raw(nv:address(), heartbeat("F", bogus(k))))
      until_({ nv, nf }, nil, 1)
      if k % 10 == 0 then most = math.max(most, fd_count() - before) end
    end
    until_({ nv, nf }, function() most = math.max(most, fd_count() - before) end, 100)
    assert.is_true(most <= 32, "discovery took " .. most .. " more file descriptors")
    v:put_weights("still", 0, { 1 }, {})
    assert.is_not_nil(v:get_weights("still", 0))
    nv:close(); nf:close(); v:close(); f:close()
  end)

  it("without CURVE a node dials nothing a heartbeat names unless discovery is on, and never a non-TCP endpoint", function()
    local v, f, r, u = open("v"), open("f"), open("r"), open("u")
    local sock = helpers.tmpdir("ipc") .. "/s"
    local nv = assert(synaptic.node(v, conf { node_id = "V", listen = "tcp://127.0.0.1:0" }))
    local nr = assert(synaptic.node(r, conf { node_id = "R", listen = "tcp://127.0.0.1:0" }))
    local nu = assert(synaptic.node(u, conf { node_id = "U", listen = "ipc://" .. sock }))
    local nf = assert(synaptic.node(f, conf { node_id = "F", peers = { nv:address() } }))
    local nodes = { nv, nr, nu, nf }
    assert.is_true(until_(nodes, function() return peer_named(nv, "F") ~= nil end))
    local sample = { { "R", nr:address() }, { "U", "ipc://" .. sock } }
    until_(nodes, function() assert(nf:_send_raw(nv:address(), heartbeat("F", sample))) end, 100)
    assert.equal(0, nv:stats().learned)
    assert.is_nil(peer_named(nr, "V"))
    assert.is_nil(peer_named(nu, "V"))
    assert.is_false(synaptic.p2p_config({}).discovery)
    assert.is_true(synaptic.p2p_config({ curve = (function()
      local p, s = synaptic.keypair()
      return { public = p, secret = s }
    end)() }).discovery)
    -- turned on: R is dialed, the unix socket still never
    local w = open("w")
    local nw = assert(synaptic.node(w, conf { node_id = "W", listen = "tcp://127.0.0.1:0", discovery = true }))
    local ng = assert(synaptic.node(open("g"), conf { node_id = "G", peers = { nw:address() } }))
    nodes = { nw, nr, nu, ng }
    assert.is_true(until_(nodes, function()
      assert(ng:_send_raw(nw:address(), heartbeat("G", sample)))
      return peer_named(nw, "R") ~= nil
    end, 400))
    until_(nodes, nil, 50)
    assert.is_nil(peer_named(nu, "W"))
    assert.is_nil(peer_named(nw, "U"))
    for _, n in ipairs { nv, nr, nu, nf, nw, ng } do n:close() end
    v:close(); f:close(); r:close(); u:close(); w:close()
  end)

  it("what the user disconnected stays disconnected, however many names discovery refuses, until node:connect", function()
    local v, f, p = open("v"), open("f"), open("p")
    local nv = assert(synaptic.node(v, conf { node_id = "V", listen = "tcp://127.0.0.1:0", discovery = true }))
    local np = assert(synaptic.node(p, conf { node_id = "P", listen = "tcp://127.0.0.1:0" }))
    local nf = assert(synaptic.node(f, conf { node_id = "F", peers = { nv:address() } }))
    local nodes = { nv, np, nf }
    local about_p = { { "P", np:address() } }
    assert.is_true(until_(nodes, function()
      assert(nf:_send_raw(nv:address(), heartbeat("F", about_p)))
      local q = peer_named(nv, "P")
      return q ~= nil and q.learned and q.state == "alive"
    end, 500))
    assert.is_true(nv:disconnect("P"))
    -- 20 heartbeats of 16 names each that discovery refuses (not TCP)
    for k = 1, 20 do
      local names = {}
      for i = 1, 16 do names[i] = { ("x-%d-%d"):format(k, i), ("inproc://x-%d-%d"):format(k, i) } end
      assert(nf:_send_raw(nv:address(), heartbeat("F", names)))
      until_(nodes, nil, 3)
    end
    local again = false
    until_(nodes, function()
      assert(nf:_send_raw(nv:address(), heartbeat("F", about_p)))
      local q = peer_named(nv, "P")
      again = again or (q ~= nil and q.learned)
    end, 150)
    assert.is_false(again)
    assert.is_true(nv:connect(np:address()))
    assert.is_true(until_(nodes, function()
      local q = peer_named(nv, "P")
      return q ~= nil and q.state == "alive" and q.node_id == "P"
    end))
    for _, n in ipairs(nodes) do n:close() end
    v:close(); f:close(); p:close()
  end)
end)

describe("node-id squatting under CURVE", function()
  after_each(helpers.cleanup)

  -- A listens and authorizes B's and X's keys (auth built by the caller);
  -- X connects first, claiming B's id, and stays.
  local function squat(auth_of)
    local ka, sa = synaptic.keypair()
    local kb, sb = synaptic.keypair()
    local kx, sx = synaptic.keypair()
    local a, b, x = open("a"), open("b"), open("x")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0",
      curve = { public = ka, secret = sa, authorized = auth_of(kb, kx) } }))
    x:put_weights("poison", 0, { 666 }, {})
    local nx = assert(synaptic.node(x, conf { node_id = "B", peers = { { endpoint = na:address(), public = ka } },
      curve = { public = kx, secret = sx } }))
    local t = { a = a, b = b, x = x, na = na, nx = nx }
    function t.start_b()
      t.nb = assert(synaptic.node(b, conf { node_id = "B", peers = { { endpoint = na:address(), public = ka } },
        curve = { public = kb, secret = sb } }))
    end
    function t.close()
      for _, n in ipairs { t.na, t.nb, t.nx } do n:close() end
      a:close(); b:close(); x:close()
    end
    return t
  end

  it("an id bound to the squatter's key is free again once the squatter's connection is gone", function()
    local t = squat(function(kb, kx) return { kb, kx } end)
    assert.is_true(until_({ t.na, t.nx }, function() return peer_named(t.na, "B") ~= nil end, 400))
    t.start_b()
    until_({ t.na, t.nb, t.nx }, nil, 40)
    t.nx:close()
    t.b:put_weights("real", 0, { 7 }, {})
    assert.is_true(until_({ t.na, t.nb }, function() return same_weights(t.a, t.b, "real", 0) end, 600))
    t.a:put_weights("back", 0, { 8 }, {})
    assert.is_true(until_({ t.na, t.nb }, function() return same_weights(t.a, t.b, "back", 0) end, 600))
    t.close()
  end)

  it("an id the config names with a key is that key's alone: a squatter never locks out the holder", function()
    local t = squat(function(kb, kx) return { { public = kb, node_id = "B" }, kx } end)
    until_({ t.na, t.nx }, nil, 60)
    assert.is_true(t.na:stats().forged > 0)
    assert.is_nil(peer_named(t.na, "B"))
    t.start_b()
    t.b:put_weights("real", 0, { 7 }, {})
    local nodes = { t.na, t.nb, t.nx }
    assert.is_true(until_(nodes, function() return same_weights(t.a, t.b, "real", 0) end, 600))
    t.a:put_weights("back", 0, { 8 }, {})
    assert.is_true(until_(nodes, function() return same_weights(t.a, t.b, "back", 0) end, 600))
    assert.is_nil(t.a:get_weights("poison", 0))
    assert.is_nil(t.x:get_weights("real", 0))
    t.close()
  end)

  it("checks authorized entries that name a node id", function()
    local k1 = synaptic.keypair()
    local k2 = synaptic.keypair()
    local p, s = synaptic.keypair()
    local function cfg(auth) return { curve = { public = p, secret = s, authorized = auth } } end
    assert.has_error(function() synaptic.p2p_config(cfg { { public = k1 } }) end,
      "p2p_config: curve.authorized[1].node_id must be 1 to 255 bytes without NUL")
    assert.has_error(function() synaptic.p2p_config(cfg { { public = k1, node_id = "B" }, { public = k2, node_id = "B" } }) end,
      "p2p_config: curve.authorized[2].node_id B is given to two keys")
    assert.has_error(function() synaptic.p2p_config(cfg { { public = k1, node_id = "B", id = 1 } }) end,
      "p2p_config: unknown field curve.authorized[1].id")
    local c = synaptic.p2p_config(cfg { { public = k1, node_id = "B" }, k2 })
    assert.same({ k1, k2 }, c.curve.authorized)
    assert.equal("B", c.curve.node_ids[k1])
  end)
end)
