-- A peer's node id cannot be taken over by another connection; what
-- node:peers() reports; node:disconnect; node:run returning on a signal.
local synaptic = require "synaptic"
local helpers = require "helpers"

local conf, open, until_ = helpers.p2p_conf, helpers.small_store, helpers.poll_until

local function same_weights(s1, s2, x, l)
  local w1, w2 = s1:get_weights(x, l), s2:get_weights(x, l)
  return w1 ~= nil and w2 ~= nil and w1:tobytes() == w2:tobytes()
end

local function peers_named(node, id)
  local out = {}
  for _, p in ipairs(node:peers()) do
    if p.node_id == id or p.id == id then out[#out + 1] = p end
  end
  return out
end

describe("peer identity", function()
  after_each(helpers.cleanup)

  it("a second connection claiming a live peer's node id gets nothing and changes nothing", function()
    local a, b, x = open("a"), open("b"), open("x")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    assert.is_true(until_({ na, nb }, function() return #peers_named(na, "B") == 1 end))
    -- the forger: same node id, and its connection claims B's id as its
    -- ZeroMQ routing id (what took the real B's pipe over before)
    x:put_weights("poison", 0, { 666 }, {})
    local nx = assert(synaptic.node(x, conf { node_id = "B" }))
    assert.is_true(nx:_force_routing_id("B"))
    assert.is_true(nx:connect(na:address()))
    local nodes = { na, nb, nx }
    assert.is_true(until_(nodes, function() return na:stats().forged >= 3 end))
    -- traffic with the real B goes on, both ways
    a:put_weights("x", 0, { 1, 2 }, {})
    b:put_weights("y", 0, { 3 }, {})
    assert.is_true(until_(nodes, function() return same_weights(a, b, "x", 0) and same_weights(a, b, "y", 0) end))
    assert.is_nil(a:get_weights("poison", 0))
    assert.is_nil(x:get_weights("x", 0))
    assert.equal(1, #peers_named(na, "B"))
    assert.is_true(na:stats().rejected >= na:stats().forged)
    -- the real B's later writes still arrive after the forger leaves
    nx:close()
    b:put_weights("z", 0, { 5 }, {})
    assert.is_true(until_({ na, nb }, function() return same_weights(a, b, "z", 0) end))
    na:close(); nb:close(); a:close(); b:close(); x:close()
  end)

  it("a restarted peer gets its node id back once its old connection is gone", function()
    local a, b = open("a"), open("b")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    assert.is_true(until_({ na, nb }, function() return #peers_named(na, "B") == 1 end))
    nb:close()
    nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    b:put_weights("after", 0, { 1 }, {})
    assert.is_true(until_({ na, nb }, function() return same_weights(a, b, "after", 0) end))
    -- (a message racing the old connection's teardown may be refused once:
    -- the next one, after it, is taken)
    assert.equal(1, #peers_named(na, "B"))
    a:put_weights("back", 0, { 2 }, {})
    assert.is_true(until_({ na, nb }, function() return same_weights(a, b, "back", 0) end))
    na:close(); nb:close(); a:close(); b:close()
  end)

  it("under CURVE a node id stays with the key that first used it", function()
    local ka, sa = synaptic.keypair()
    local kb, sb = synaptic.keypair()
    local kx, sx = synaptic.keypair()
    local a, b, x = open("a"), open("b"), open("x")
    -- X's key is authorized: it may connect, but not as B
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0",
      curve = { public = ka, secret = sa, authorized = { kb, kx } } }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { { endpoint = na:address(), public = ka } },
      curve = { public = kb, secret = sb } }))
    assert.is_true(until_({ na, nb }, function() return #peers_named(na, "B") == 1 end, 400))
    assert.equal(kb, peers_named(na, "B")[1].public)
    x:put_weights("poison", 0, { 666 }, {})
    local nx = assert(synaptic.node(x, conf { node_id = "B", peers = { { endpoint = na:address(), public = ka } },
      curve = { public = kx, secret = sx } }))
    local nodes = { na, nb, nx }
    assert.is_true(until_(nodes, function() return na:stats().forged >= 3 end, 400))
    a:put_weights("x", 0, { 1 }, {})
    assert.is_true(until_(nodes, function() return same_weights(a, b, "x", 0) end, 400))
    assert.is_nil(a:get_weights("poison", 0))
    assert.is_nil(x:get_weights("x", 0))
    assert.equal(kb, peers_named(na, "B")[1].public)
    assert.is_true(na:stats().rejected >= na:stats().forged)
    na:close(); nb:close(); nx:close(); a:close(); b:close(); x:close()
  end)
end)

describe("node:peers", function()
  after_each(helpers.cleanup)

  it("lists inbound and outbound peers with their address, state and traffic", function()
    local a, b, c = open("a"), open("b"), open("c")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    local nc = assert(synaptic.node(c, conf { node_id = "C", listen = "tcp://127.0.0.1:0", peers = { na:address() } }))
    a:put_weights("x", 0, { 1 }, {})
    local nodes = { na, nb, nc }
    assert.is_true(until_(nodes, function()
      local pb, pc = peers_named(na, "B")[1], peers_named(na, "C")[1]
      return pb and pc and pc.endpoint and same_weights(a, b, "x", 0) and same_weights(a, c, "x", 0)
    end))
    until_(nodes, nil, 40)
    local pb, pc = peers_named(na, "B")[1], peers_named(na, "C")[1]
    -- inbound: its id is its node id; an endpoint only when it listens
    assert.equal("B", pb.id)
    assert.equal("B", pb.node_id)
    assert.is_nil(pb.endpoint)
    assert.equal(nc:address(), pc.endpoint)
    for _, p in ipairs { pb, pc } do
      assert.equal("alive", p.state)
      assert.is_number(p.last_seen)
      assert.is_false(p.learned)
      assert.is_nil(p.public)
      assert.is_true(p.bytes_sent > 0 and p.bytes_received > 0)
      assert.equal(0, p.missing_here)
      assert.equal(0, p.missing_there)
    end
    -- outbound: its id is the endpoint dialed
    local pa = nb:peers()[1]
    assert.equal(na:address(), pa.id)
    assert.equal(na:address(), pa.endpoint)
    assert.equal("A", pa.node_id)
    assert.is_true(pa.bytes_received >= pb.bytes_sent and pb.bytes_sent > 0)
    na:close(); nb:close(); nc:close(); a:close(); b:close(); c:close()
  end)

  it("counts the log entries each side lacks from the peer's last request", function()
    local a, b = open("a"), open("b")
    local ea = synaptic.sync_engine(a, { node_id = "A" })
    local eb = synaptic.sync_engine(b, { node_id = "B" })
    ea:add_peer("B"); eb:add_peer("A")
    for i = 1, 3 do b:put_weights("w" .. i, 0, { i }, {}) end
    a:put_weights("v", 0, { 1 }, {})
    local p = ea:peers()[1]
    assert.is_nil(p.missing_here)   -- nothing heard from B yet
    assert.is_true(eb:sync_now())
    for _, m in ipairs(eb:outbox()) do
      if m.to == "A" then ea:receive("B", m.bytes) end
    end
    p = ea:peers()[1]
    assert.equal(3, p.missing_here)
    assert.equal(1, p.missing_there)
    assert.equal("B", p.node_id)
    assert.is_true(p.bytes_received > 0)
    ea:close(); eb:close(); a:close(); b:close()
  end)
end)

describe("node:disconnect", function()
  after_each(helpers.cleanup)

  it("drops an outbound or an inbound peer; false for an unknown one", function()
    local a, b = open("a"), open("b")
    local na = assert(synaptic.node(a, conf { node_id = "A", listen = "tcp://127.0.0.1:0" }))
    local nb = assert(synaptic.node(b, conf { node_id = "B", peers = { na:address() } }))
    -- each has heard the other (B learns the node id "A" from A's first message)
    assert.is_true(until_({ na, nb }, function()
      return #peers_named(na, "B") == 1 and #peers_named(nb, "A") == 1
    end))
    assert.is_false(nb:disconnect("tcp://127.0.0.1:1"))
    assert.has_error(function() nb:disconnect() end)
    -- inbound: forgotten now (it comes back if it speaks again)
    assert.is_true(na:disconnect("B"))
    assert.equal(0, #peers_named(na, "B"))
    -- outbound, by node id: closed, and nothing more reaches A from B
    assert.is_true(nb:disconnect("A"))
    assert.equal(0, #nb:peers())
    until_({ na, nb }, nil, 20)
    b:put_weights("late", 0, { 1 }, {})
    until_({ na, nb }, nil, 60)
    assert.is_nil(a:get_weights("late", 0))
    -- an explicit connect brings it back
    assert.is_true(nb:connect(na:address()))
    assert.is_true(until_({ na, nb }, function() return same_weights(a, b, "late", 0) end))
    na:close(); nb:close(); a:close(); b:close()
  end)
end)

describe("signals", function()
  after_each(helpers.cleanup)

  it("node:run returns true, \"interrupted\" on a trapped SIGINT or SIGTERM", function()
    local dir = helpers.tmpdir("sig")
    local script = dir .. "/child.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local synaptic = require "synaptic"
      local core = require "synaptic.core"
      local s = assert(synaptic.open(arg[1] .. "/store"))
      local n = assert(synaptic.node(s, { node_id = "sig", listen = "tcp://127.0.0.1:0" }))
      local stat = assert(io.open("/proc/self/stat"))
      local pid = stat:read("n")
      stat:close()
      print("before", tostring(core.interrupted()))
      assert(core.trap_signals())
      -- lands while run waits in zmq_poll
      os.execute(("(sleep 0.5; kill -INT %d) >/dev/null 2>&1 &"):format(pid))
      print("run", n:run(60))
      print("flag", core.interrupted())
      print("again", n:run(60))
      print("poll", n:poll(10))
      -- lands between polls: seen by the next run at once
      assert(core.trap_signals())
      print("cleared", tostring(core.interrupted()))
      os.execute(("kill -TERM %d"):format(pid))
      print("flag", core.interrupted())
      print("run", n:run(60))
      n:close(); s:close()
    ]])
    f:close()
    local ok, code, out = helpers.run(helpers.child_env() .. "timeout 50 lua5.4 " .. helpers.shq(script) .. " " .. helpers.shq(dir))
    assert.is_true(ok, out)
    assert.equal(0, code)
    assert.matches("before\tfalse\nrun\ttrue\tinterrupted\nflag\tSIGINT\nagain\ttrue\tinterrupted\n" ..
                   "poll\ttrue\tinterrupted\ncleared\tfalse\nflag\tSIGTERM\nrun\ttrue\tinterrupted\n", out)
  end)

  it("an untrapped Ctrl-C reaches Lua's own handler instead of being swallowed in node:run", function()
    local dir = helpers.tmpdir("sig")
    local script = dir .. "/child.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local synaptic = require "synaptic"
      local s = assert(synaptic.open(arg[1] .. "/store"))
      local n = assert(synaptic.node(s, { node_id = "sig", listen = "tcp://127.0.0.1:0" }))
      local stat = assert(io.open("/proc/self/stat"))
      local pid = stat:read("n")
      stat:close()
      os.execute(("(sleep 0.5; kill -INT %d) >/dev/null 2>&1 &"):format(pid))
      n:run(600)
      print("not interrupted")
    ]])
    f:close()
    -- the interpreter's SIGINT handler raises "interrupted!" once run returns;
    -- swallowed, run would go on until timeout kills it (exit 124)
    local _, code, out = helpers.run(helpers.child_env() .. "timeout 30 lua5.4 " .. helpers.shq(script) .. " " .. helpers.shq(dir))
    assert.equal(1, code, out)
    assert.matches("interrupted!", out)
    assert.not_matches("not interrupted", out)
  end)
end)
