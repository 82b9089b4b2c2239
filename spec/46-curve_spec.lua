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
