-- NATS nodes with keys: messages sealed end to end (the server's own trace
-- shows no plaintext), and what a forger or a tampering server sends is
-- refused: an unauthorized key, a key speaking for an id named for another,
-- a tampered envelope, unsealed bytes. Loops are bounded by rounds.
local synaptic = require "synaptic"
local helpers = require "helpers"
local nats_server = require "nats_server"

local open, until_ = helpers.small_store, helpers.poll_until

local MARKER = "plaintext-marker-7f3c9e"   -- a config's domain: msgpack carries it as it is

describe("NATS nodes with keys", function()
  local server, why
  local made = {}
  local keys = {}

  before_each(function()
    server, why = nats_server.start { trace = true }
    for _, name in ipairs { "A", "B", "F" } do
      local public, secret = synaptic.keypair()
      keys[name] = { public = public, secret = secret }
    end
  end)

  after_each(function()
    for i = #made, 1, -1 do made[i]:close(); made[i] = nil end
    if server then server:stop() end
    helpers.cleanup()
  end)

  local function keep(x) made[#made + 1] = x; return x end

  local function node(store, id, keyname, authorized, prefix)
    local k = keys[keyname]
    return keep(assert(synaptic.node(store, helpers.p2p_conf {
      node_id = id, transport = "nats",
      nats = { url = server:url(), subject_prefix = prefix or "synaptic.spec81" },
      curve = keyname and { public = k.public, secret = k.secret, authorized = authorized } or nil,
    })))
  end

  local function config(store, domain)
    store:put_config { expert_id = "e", domain = domain, parameter_count = 1, learning_rate = 0.1, architecture = { 1 } }
  end

  it("without keys the server sees the records (the check below can fail)", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local na, nb = node(a, "A"), node(b, "B")
    config(a, MARKER)
    assert.is_true(until_({ na, nb }, function() return b:get_config("e") ~= nil end))
    assert.truthy(server:log():find(MARKER, 1, true))
  end)

  it("with keys two nodes converge and the server sees no plaintext", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local na = node(a, "A", "A", { keys.B.public })
    local nb = node(b, "B", "B", { keys.A.public })
    config(a, MARKER)
    a:put_weights("x", 0, helpers.weights(32, 1), {})
    b:put_weights("y", 0, helpers.weights(32, 2), {})
    assert.is_true(until_({ na, nb }, function()
      return b:get_config("e") ~= nil and b:get_weights("x", 0) ~= nil and a:get_weights("y", 0) ~= nil
    end))
    assert.equal(MARKER, b:get_config("e").domain)
    local log = server:log()
    assert.truthy(log:find("synaptic.spec81.mesh", 1, true))   -- the trace does show messages
    assert.falsy(log:find(MARKER, 1, true))
    assert.falsy(log:find('"from"', 1, true))
    assert.equal(keys.B.public, na:peers()[1].public)
    assert.equal(0, na:stats().rejected)
  end)

  it("node:authorize admits a key while it runs, node:revoke refuses it again", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local na = node(a, "A", "A", {})
    local nb = node(b, "B", "B", { keys.A.public })
    b:put_weights("y", 0, helpers.weights(8, 2), {})
    until_({ na, nb }, nil, 60)
    assert.is_nil(a:get_weights("y", 0))                -- B is not admitted yet
    assert.is_true(na:authorize(keys.B.public, "B"))
    assert.is_true(until_({ na, nb }, function() return a:get_weights("y", 0) ~= nil end, 500))
    local rejected = na:stats().rejected
    assert.is_true(na:revoke(keys.B.public))
    assert.equal(0, #na:peers())
    b:put_weights("late", 0, helpers.weights(8, 3), {})
    until_({ na, nb }, nil, 100)
    assert.is_nil(a:get_weights("late", 0))
    assert.is_true(na:stats().rejected > rejected)
    assert.is_false(na:revoke(keys.B.public))
  end)

  it("refuses an unauthorized key's messages, which change nothing", function()
    if not server then return pending(why) end
    local a, f = keep(open("a")), keep(open("f"))
    local na = node(a, "A", "A", { keys.B.public })
    local nf = node(f, "F", "F", { keys.A.public })   -- F seals to A, A does not admit F
    f:put_weights("evil", 0, { 6, 6, 6 }, {})
    assert.is_true(nf:connect("A", keys.A.public))
    assert.is_true(until_({ na, nf }, function() return na:stats().rejected >= 3 end))
    assert.is_nil(a:get_weights("evil", 0))
    assert.equal(0, #na:peers())
  end)

  it("refuses a key speaking for a node id curve.authorized gives another key", function()
    if not server then return pending(why) end
    local a, m = keep(open("a")), keep(open("m"))
    local na = node(a, "A", "A", { { public = keys.B.public, node_id = "B" }, keys.F.public })
    local nm = node(m, "B", "F", { keys.A.public })  -- F's key, claiming B's id
    m:put_weights("squat", 0, { 1 }, {})
    assert.is_true(until_({ na, nm }, function() return na:stats().forged >= 2 end))
    assert.is_nil(a:get_weights("squat", 0))
    assert.equal(na:stats().forged, na:stats().rejected)
  end)

  it("refuses a tampered envelope and unsealed bytes, and takes the intact envelope", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local na = node(a, "A", "A", { keys.B.public })
    -- B's messages to A, from a bare engine, sealed with B's keys by a node
    -- on another prefix (so it never syncs with A itself)
    local nb = node(keep(open("nb")), "B", "B", { keys.A.public }, "synaptic.elsewhere")
    b:put_weights("w", 0, { 1, 2, 3 }, {})
    local engine = keep(synaptic.sync_engine(b, helpers.p2p_conf { node_id = "B" }))
    assert(engine:add_peer("A"))
    assert(engine:tick(synaptic.now()))
    local out = engine:outbox()
    assert.is_true(#out >= 1)
    local before = na:stats().rejected
    for _, m in ipairs(out) do
      local env = nb:_seal(keys.A.public, m.bytes)
      assert.equal(#m.bytes + 108, #env)
      local i = #env - 5   -- a byte of the ciphertext
      local tampered = env:sub(1, i - 1) .. string.char((env:byte(i) + 1) % 256) .. env:sub(i + 1)
      assert(nb:_send_raw(na:address(), tampered))
      assert(nb:_send_raw(na:address(), m.bytes))   -- unsealed
    end
    until_({ na }, function() return na:stats().rejected >= before + 2 * #out end, 100)
    assert.equal(before + 2 * #out, na:stats().rejected)
    assert.equal(0, #na:peers())
    for _, m in ipairs(out) do assert(nb:_send_raw(na:address(), nb:_seal(keys.A.public, m.bytes))) end
    assert.is_true(until_({ na }, function() return #na:peers() == 1 end, 100))
    assert.equal("B", na:peers()[1].id)
    assert.equal(before + 2 * #out, na:stats().rejected)
    assert.has_error(function() nb:_seal("short", "x") end, "_seal: a key must be 40 Z85 characters")
  end)
end)
