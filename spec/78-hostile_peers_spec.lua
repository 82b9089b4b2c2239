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
