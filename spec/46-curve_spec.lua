-- CURVE: an authorized peer syncs; an unauthorized one gets nothing and
-- changes nothing, in both directions.
local synaptic = require "synaptic"
local helpers = require "helpers"

local conf, open = helpers.p2p_conf, helpers.small_store
local function spin(nodes, cond, n) return helpers.poll_until(nodes, cond, n or 200) end

describe("CURVE", function()
  after_each(helpers.cleanup)

  it("keypair returns two 40-character Z85 keys", function()
    local pub, sec = synaptic.keypair()
    assert.equal(40, #pub)
    assert.equal(40, #sec)
    assert.not_equal(pub, sec)
    assert.not_equal(pub, (synaptic.keypair()))
  end)

  it("admits an authorized peer and refuses an unauthorized one", function()
    local spub, ssec = synaptic.keypair()
    local gpub, gsec = synaptic.keypair()     -- the good client
    local epub, esec = synaptic.keypair()     -- the intruder
    local s, g, x = open("s"), open("g"), open("x")
    s:put_weights("secret", 0, { 42 }, {})
    x:put_weights("poison", 0, { 666 }, {})
    local ns = assert(synaptic.node(s, conf { node_id = "S", listen = "tcp://127.0.0.1:0",
      curve = { public = spub, secret = ssec, authorized = { gpub } } }))
    local ng = assert(synaptic.node(g, conf { node_id = "G",
      peers = { { endpoint = ns:address(), public = spub } },
      curve = { public = gpub, secret = gsec } }))
    local nx = assert(synaptic.node(x, conf { node_id = "X",
      peers = { { endpoint = ns:address(), public = spub } },
      curve = { public = epub, secret = esec } }))
    assert.is_true(spin({ ns, ng, nx }, function() return g:get_weights("secret", 0) ~= nil end))
    spin({ ns, ng, nx }, nil, 60)
    -- the intruder learned nothing, and wrote nothing into the server or the good client
    assert.is_nil(x:get_weights("secret", 0))
    assert.is_nil(s:get_weights("poison", 0))
    assert.is_nil(g:get_weights("poison", 0))
    assert.is_true(ns:stats().unauthorized >= 1)
    assert.is_true(ns:stats().rejected >= 1)
    ns:close(); ng:close(); nx:close(); s:close(); g:close(); x:close()
  end)

  it("node:authorize admits a key on a running node; node:revoke shuts it out again", function()
    local spub, ssec = synaptic.keypair()
    local gpub, gsec = synaptic.keypair()
    local s, g = open("s"), open("g")
    s:put_weights("secret", 0, { 42 }, {})
    local ns = assert(synaptic.node(s, conf { node_id = "S", listen = "tcp://127.0.0.1:0",
      curve = { public = spub, secret = ssec, authorized = {} } }))
    local ng = assert(synaptic.node(g, conf { node_id = "G",
      peers = { { endpoint = ns:address(), public = spub } }, curve = { public = gpub, secret = gsec } }))
    -- not yet authorized: refused at the handshake, nothing crosses
    assert.is_true(spin({ ns, ng }, function() return ns:stats().unauthorized >= 1 end))
    assert.is_nil(g:get_weights("secret", 0))
    -- authorized while both run: ZeroMQ's next reconnect is admitted
    assert.is_true(ns:authorize(gpub, "G"))
    assert.is_true(spin({ ns, ng }, function() return g:get_weights("secret", 0) ~= nil end, 1000))
    g:put_weights("from_g", 0, { 7 }, {})
    assert.is_true(spin({ ns, ng }, function() return s:get_weights("from_g", 0) ~= nil end))
    -- revoked: the peer is forgotten at once, and what G sends later is dropped
    local denied = ns:stats().unauthorized
    assert.is_true(ns:revoke(gpub))
    for _, p in ipairs(ns:peers()) do assert.not_equal("G", p.node_id) end
    g:put_weights("late", 0, { 9 }, {})
    spin({ ns, ng }, nil, 100)
    assert.is_nil(s:get_weights("late", 0))
    assert.is_true(ns:stats().unauthorized > denied)
    for _, p in ipairs(ns:peers()) do assert.not_equal("G", p.node_id) end
    assert.is_false(ns:revoke(gpub))          -- no longer there
    ns:close(); ng:close(); s:close(); g:close()
  end)

  it("revoking the key of a peer we dialed closes that connection", function()
    local spub, ssec = synaptic.keypair()
    local cpub, csec = synaptic.keypair()
    local s, c = open("s"), open("c")
    local ns = assert(synaptic.node(s, conf { node_id = "S", listen = "tcp://127.0.0.1:0",
      curve = { public = spub, secret = ssec, authorized = { cpub } } }))
    local nc = assert(synaptic.node(c, conf { node_id = "C",
      peers = { { endpoint = ns:address(), public = spub } }, curve = { public = cpub, secret = csec,
      authorized = { spub } } }))
    assert.is_true(spin({ ns, nc }, function() return #nc:peers() == 1 and nc:peers()[1].state == "alive" end))
    assert.is_true(nc:revoke(spub))
    assert.equal(0, #nc:peers())
    s:put_weights("after", 0, { 1 }, {})
    spin({ ns, nc }, nil, 100)
    assert.is_nil(c:get_weights("after", 0))
    assert.equal(0, #nc:peers())
    ns:close(); nc:close(); s:close(); c:close()
  end)

  it("authorize and revoke check their arguments and need CURVE", function()
    local pub, sec = synaptic.keypair()
    local other = synaptic.keypair()
    local s, p = open("s"), open("p")
    local ns = assert(synaptic.node(s, conf { node_id = "S", curve = { public = pub, secret = sec } }))
    assert.has_error(function() ns:authorize("not a key") end, "authorize: 'not a key' is not a 40-character Z85 public key")
    assert.has_error(function() ns:authorize() end)
    assert.has_error(function() ns:revoke() end)
    assert.is_true(ns:authorize(other, "B"))
    assert.is_true(ns:authorize(other, "B"))     -- again: no change
    local third = synaptic.keypair()
    assert.has_error(function() ns:authorize(third, "B") end, "authorize: node id 'B' is held by another authorized key")
    local np = assert(synaptic.node(p, conf { node_id = "P" }))
    assert.has_error(function() np:authorize(other) end, "authorize: authorize needs a node with curve keys")
    assert.has_error(function() np:revoke(other) end, "revoke: revoke needs a node with curve keys")
    ns:close(); np:close(); s:close(); p:close()
  end)

  it("a client with the wrong server key gets nothing", function()
    local spub, ssec = synaptic.keypair()
    local cpub, csec = synaptic.keypair()
    local wrong = synaptic.keypair()
    local s, c = open("s"), open("c")
    s:put_weights("secret", 0, { 1 }, {})
    local ns = assert(synaptic.node(s, conf { node_id = "S", listen = "tcp://127.0.0.1:0",
      curve = { public = spub, secret = ssec, authorized = { cpub } } }))
    local nc = assert(synaptic.node(c, conf { node_id = "C",
      peers = { { endpoint = ns:address(), public = wrong } }, curve = { public = cpub, secret = csec } }))
    spin({ ns, nc }, nil, 60)
    assert.is_nil(c:get_weights("secret", 0))
    ns:close(); nc:close(); s:close(); c:close()
  end)

  it("validates curve keys in p2p_config", function()
    assert.has_error(function() synaptic.p2p_config { curve = { public = "x", secret = "y" } } end)
    local pub, sec = synaptic.keypair()
    assert.has_error(function() synaptic.p2p_config { curve = { public = pub, secret = sec }, peers = { "tcp://127.0.0.1:1" } } end)
    local c = synaptic.p2p_config { listen = "tcp://0.0.0.0:0", curve = { public = pub, secret = sec, server_key = pub },
                                    peers = { "tcp://127.0.0.1:1" } }
    assert.equal(pub, c.peers[1].public)
  end)
end)
