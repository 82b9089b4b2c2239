-- NATS nodes through a nats-server on loopback that the spec starts itself:
-- config checks, two and three nodes converging with no peers listed
-- (found on the mesh subject), chunked records under max_payload, node
-- methods. Loops are bounded by rounds, never by timing asserts.
local synaptic = require "synaptic"
local helpers = require "helpers"
local nats_server = require "nats_server"

local open, until_ = helpers.small_store, helpers.poll_until

local function same_weights(s1, s2, x, l)
  local w1 = s1:get_weights(x, l)
  local w2 = s2:get_weights(x, l)
  return w1 ~= nil and w2 ~= nil and w1:tobytes() == w2:tobytes()
end

describe("p2p_config with transport nats", function()
  it("fills the NATS defaults and sizes messages under max_payload", function()
    local c = synaptic.p2p_config { transport = "nats", nats = {} }
    assert.equal("nats://127.0.0.1:4222", c.nats.url)
    assert.equal("synaptic.default", c.nats.subject_prefix)
    assert.equal(1048576 - 108, c.max_message_bytes)
    assert.equal((1048576 - 108) * 3 // 4, c.chunk_bytes)
    assert.equal("zeromq", synaptic.p2p_config {}.transport)
    assert.same({}, synaptic.p2p_config { transport = "nats", nats = { jetstream = true } }.nats.jetstream)
    assert.same({ max_age_seconds = 60, max_bytes = 1048576 },
                synaptic.p2p_config { transport = "nats", nats = { jetstream = { max_age_seconds = 60, max_bytes = 1048576 } } }.nats.jetstream)
  end)

  it("refuses bad NATS fields with a clear message", function()
    local function bad(t, msg)
      assert.has_error(function() synaptic.p2p_config(t) end, msg)
    end
    bad({ transport = "carrier pigeon" }, 'p2p_config: transport must be "zeromq" or "nats"')
    bad({ transport = "nats", nats = { uri = "x" } }, "p2p_config: unknown field nats.uri")
    bad({ transport = "nats", nats = { url = "127.0.0.1" } },
        "p2p_config: nats.url must be a server URL like nats://127.0.0.1:4222 (or a comma-separated list)")
    bad({ transport = "nats", nats = { subject_prefix = "a.*" } },
        "p2p_config: nats.subject_prefix must be dot-separated tokens of letters, digits, _ and - (at most 200 bytes)")
    bad({ transport = "nats", nats = { subject_prefix = "a..b" } },
        "p2p_config: nats.subject_prefix must be dot-separated tokens of letters, digits, _ and - (at most 200 bytes)")
    bad({ transport = "nats", nats = { user = "u" } }, "p2p_config: nats.user and nats.password go together")
    bad({ transport = "nats", nats = { user = "u", password = "p", token = "t" } },
        "p2p_config: nats: give one of user/password, token, credentials or nkey")
    bad({ transport = "nats", nats = { tls = { cert = "c" } } }, "p2p_config: nats.tls.cert and nats.tls.key go together")
    bad({ transport = "nats", nats = { nkey = { public = "U" } } }, "p2p_config: nats.nkey needs public and seed_file")
    bad({ transport = "nats", nats = { jetstream = { max_age = 1 } } },
        "p2p_config: nats.jetstream must be true or { max_age_seconds =, max_bytes = } (positive numbers)")
    bad({ transport = "nats", listen = "tcp://0.0.0.0:0" },
        "p2p_config: refusing to listen on tcp://0.0.0.0:0 without CURVE; set curve, or insecure = true")
    bad({ nats = {} }, 'p2p_config: nats is for transport "nats"')
    bad({ transport = "nats", peers = { 7 } },
        "p2p_config: peers[1] must be a node id or {node_id=, public=} under transport nats")
  end)
end)

describe("NATS nodes", function()
  local server, why
  local made = {}

  before_each(function()
    server, why = nats_server.start()
  end)

  after_each(function()
    for i = #made, 1, -1 do made[i]:close(); made[i] = nil end
    if server then server:stop() end
    helpers.cleanup()
  end)

  local function keep(x) made[#made + 1] = x; return x end

  local function node(store, id, extra)
    local t = helpers.p2p_conf { node_id = id, transport = "nats",
                                 nats = { url = server:url(), subject_prefix = "synaptic.spec80" } }
    for k, v in pairs(extra or {}) do t[k] = v end
    return keep(assert(synaptic.node(store, t)))
  end

  it("two nodes that list no peers find each other on the mesh and replicate both ways", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local na, nb = node(a, "A"), node(b, "B")
    assert.equal("synaptic.spec80.node.41", na:address())
    assert.matches("^synaptic.nats_node %(synaptic.spec80.node.42 on nats://127.0.0.1:%d+%)$", tostring(nb))
    a:put_weights("x", 0, { 1, 2, 3 }, { 0.5 })
    b:put_weights("y", 1, { 4, 5 }, {})
    b:put_config { expert_id = "x", domain = "coding", parameter_count = 3, learning_rate = 0.1, architecture = { 3 } }
    local cp = a:create_checkpoint { system_version = "1" }
    assert.is_true(until_({ na, nb }, function()
      return same_weights(a, b, "x", 0) and same_weights(a, b, "y", 1) and a:get_config("x") ~= nil
         and #b:list_checkpoints() == 1
    end))
    assert.equal(cp, b:list_checkpoints()[1])
    local sa = na:stats()
    assert.is_true(sa.published > 0 and sa.received > 0 and sa.weights_sent >= 1)
    assert.equal(0, sa.rejected)
    local ids = {}
    for _, p in ipairs(na:peers()) do ids[p.id] = p.state end
    assert.equal("alive", ids.B)
  end)

  it("a node that closes is marked left by its peers at once", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), open("b")
    local na = node(a, "A")
    local nb = assert(synaptic.node(b, helpers.p2p_conf { node_id = "B", transport = "nats",
      nats = { url = server:url(), subject_prefix = "synaptic.spec80" } }))
    local function state()
      for _, p in ipairs(na:peers()) do if p.id == "B" then return p.state end end
    end
    assert.is_true(until_({ na, nb }, function() return state() == "alive" end))
    nb:close(); b:close()
    -- only a leaving heartbeat makes a peer "left" (silence makes it suspect,
    -- then dead), so the bound can be generous for a loaded machine
    assert.is_true(until_({ na }, function() return state() == "left" end, 250))
  end)

  it("three nodes converge byte-identically, concurrent writes to one layer included", function()
    if not server then return pending(why) end
    local s = { keep(open("a")), keep(open("b")), keep(open("c")) }
    local n = { node(s[1], "A"), node(s[2], "B"), node(s[3], "C") }
    for i = 1, 3 do s[i]:put_weights("shared", 0, helpers.weights(64, i), {}) end
    s[3]:put_weights("own", 2, helpers.weights(16, 9), {})
    assert.is_true(until_(n, function()
      return same_weights(s[1], s[2], "shared", 0) and same_weights(s[2], s[3], "shared", 0)
         and same_weights(s[1], s[3], "own", 2)
    end, 500))
    for i = 1, 3 do assert.equal(2, #n[i]:peers()) end
  end)

  it("a record larger than one message travels in chunks under the server's max_payload", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local na, nb = node(a, "A"), node(b, "B")
    -- 3 MiB of random floats: about three times nats-server's max_payload
    a:put_weights("big", 0, helpers.weights(786432, 5), {})
    assert.is_true(until_({ na, nb }, function() return same_weights(a, b, "big", 0) end, 1000))
    assert.is_true(na:stats().chunks_sent >= 3)
    assert.equal(0, na:stats().dropped)
  end)

  it("a burst of many small writes fits max_payload: none dropped, all delivered", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local na, nb = node(a, "A"), node(b, "B")
    until_({ na, nb }, function() return #na:peers() == 1 and #nb:peers() == 1 end)
    local small = synaptic.floats(helpers.weights(1024, 12))
    for i = 1, 500 do a:put_weights("small", i, small, {}) end
    assert.is_true(until_({ na, nb }, function() return #b:layers("small") == 500 end, 500))
    assert.equal(0, na:stats().dropped)
  end)

  it("refuses a max_message_bytes the server cannot carry, naming the figure", function()
    if not server then return pending(why) end
    local a = keep(open("a"))
    local n, err = synaptic.node(a, helpers.p2p_conf { node_id = "A", transport = "nats", max_message_bytes = 4194304,
                                                       nats = { url = server:url() } })
    assert.is_nil(n)
    assert.equal("max_message_bytes 4194304 is over what the NATS server takes (max_payload less sealing: 1048468)", err)
  end)

  it("connect, disconnect, close, and a server that is not there", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local na = node(a, "A")
    assert.is_true(na:connect("B"))
    assert.equal("B", na:peers()[1].id)
    assert.has_error(function() na:connect("A") end, "connect: a node cannot be its own peer")
    assert.is_true(na:disconnect("B"))
    assert.is_false(na:disconnect("B"))
    local nb = node(b, "B")
    until_({ na, nb }, nil, 50)
    assert.equal(0, #na:peers())           -- blocked: B's heartbeats do not bring it back
    assert.equal("A", na:node_id())
    assert.is_true(na:close())
    assert.is_true(na:close())
    assert.equal("synaptic.nats_node (closed)", tostring(na))
    assert.has_error(function() na:poll() end, "attempt to use a closed node")
    local port = server.port
    server:stop()
    local n, err = synaptic.node(b, helpers.p2p_conf { node_id = "Z", transport = "nats",
                                                       nats = { url = ("nats://127.0.0.1:%d"):format(port) } })
    assert.is_nil(n)
    assert.matches("^cannot connect to NATS at nats://127%.0%.0%.1:%d+: ", err)
  end)
end)
