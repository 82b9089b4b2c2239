-- NATS beyond two stores: two runtimes that reach each other only through
-- nats-server (with keys) learn each other's training and converge
-- byte-identically; a node offline while others write catches up from
-- JetStream alone, the writers gone; the server restarting mid-sync loses
-- nothing a node wrote; synaptic serve --nats. Loops are bounded by rounds.
local synaptic = require "synaptic"
local cjson = require "cjson"
local helpers = require "helpers"
local nats_server = require "nats_server"
local C = require "cli_run"

local open, until_ = helpers.small_store, helpers.poll_until
local q = helpers.shq

local EXPERTS = { "reasoning", "coding", "language", "mathematics", "tool_use", "context", "router" }
local QUERIES = { { "zebra lantern quartz velvet", "mathematics" }, { "harbor cactus violin meadow", "tool_use" } }

-- Current weights of every layer, bytes and identity.
local function fingerprint(store)
  local out = {}
  for _, x in ipairs(EXPERTS) do
    for _, l in ipairs(store:layers(x)) do
      local w, b, info = store:get_weights(x, l)
      out[#out + 1] = ("%s/%d %d %s %s %s"):format(x, l, info.hlc, info.origin, w:tobytes(), b:tobytes())
    end
  end
  return table.concat(out, "\n")
end

local function top(rt, query)
  local _, details = rt:process(query)
  return details.domains[1]
end

describe("NATS meshes", function()
  local server, why
  local made = {}

  before_each(function() server, why = nats_server.start() end)

  after_each(function()
    for i = #made, 1, -1 do made[i]:close(); made[i] = nil end
    if server then server:stop() end
    helpers.cleanup()
  end)

  local function keep(x) made[#made + 1] = x; return x end

  it("two runtimes with keys learn each other's training and converge byte-identically", function()
    if not server then return pending(why) end
    local dir = helpers.tmpdir("rt")
    assert(synaptic.runtime(dir .. "/r1", { seed = 7 })):close()
    os.execute(("cp -r %s %s"):format(q(dir .. "/r1"), q(dir .. "/r2")))
    local k1, k2 = { synaptic.keypair() }, { synaptic.keypair() }
    local rts = {}
    for i, k in ipairs { k1, k2 } do
      local other = i == 1 and k2 or k1
      rts[i] = keep(assert(synaptic.runtime(dir .. "/r" .. i, { seed = 7, auto_save_interval = 3600 })))
      assert(rts[i]:enable_p2p_sync {
        node_id = "rt" .. i, transport = "nats", nats = { url = server:url(), subject_prefix = "synaptic.rt" },
        heartbeat_interval_seconds = 0.2, sync_interval_seconds = 0.5, peer_timeout_seconds = 5,
        curve = { public = k[1], secret = k[2], authorized = { other[1] } },
      })
    end
    -- Polls both until their current weights agree (bounded by rounds).
    local function settle()
      for _ = 1, 1500 do
        for _, rt in ipairs(rts) do assert(rt:poll(5)) end
        if fingerprint(rts[1].store) == fingerprint(rts[2].store) then return true end
      end
      return false
    end
    -- each trains its own query in turn, polling as it goes; the other
    -- learns it through the server alone
    for i, rt in ipairs(rts) do
      assert.not_equal(QUERIES[i][2], top(rts[3 - i], QUERIES[i][1]))
      for _ = 1, 40 do
        rt:train(QUERIES[i][1], QUERIES[i][2])
        for _, r in ipairs(rts) do assert(r:poll(0)) end
      end
      assert.is_true(settle(), "the runtimes' weights differ")
      assert.equal(QUERIES[i][2], top(rts[3 - i], QUERIES[i][1]))
    end
    for _, rt in ipairs(rts) do
      for _, qd in ipairs(QUERIES) do assert.equal(qd[2], top(rt, qd[1])) end
      assert.is_true(rt:node():stats().weights_received > 0)
    end
  end)

  it("a node offline while others write catches up from JetStream alone, the writers gone", function()
    if server then server:stop() end
    server, why = nats_server.start { jetstream = true }
    if not server then return pending(why) end
    local function node(store, id)
      return assert(synaptic.node(store, helpers.p2p_conf { node_id = id, transport = "nats",
        nats = { url = server:url(), subject_prefix = "synaptic.js", jetstream = { max_age_seconds = 3600 } } }))
    end
    local a, b = keep(open("a")), keep(open("b"))
    local cdir = helpers.tmpdir("c")
    local c = assert(synaptic.open(cdir))
    local nc = node(c, "C")                       -- C's durable consumer exists from now on
    local na, nb = node(a, "A"), node(b, "B")
    until_({ na, nb, nc }, function() return #na:peers() == 2 and #nc:peers() == 2 end)
    nc:close()
    c:close()
    for i = 1, 5 do a:put_weights("from_a", i, helpers.weights(100, i), {}) end
    for i = 1, 5 do b:put_weights("from_b", i, helpers.weights(100, 10 + i), {}) end
    assert.is_true(until_({ na, nb }, function() return b:get_weights("from_a", 5) and a:get_weights("from_b", 5) end))
    na:close()
    nb:close()
    c = keep(assert(synaptic.open(cdir)))
    nc = keep(node(c, "C"))
    assert.is_true(until_({ nc }, function()
      for i = 1, 5 do
        if not c:get_weights("from_a", i) or not c:get_weights("from_b", i) then return false end
      end
      return true
    end, 500))
    for i = 1, 5 do assert.equal(a:get_weights("from_a", i):tobytes(), c:get_weights("from_a", i):tobytes()) end
    assert.is_true(nc:stats().replayed > 0)
  end)

  it("a gateway: a LAN node on ZeroMQ and a remote node on NATS share one history through it", function()
    if not server then return pending(why) end
    local g, lan, remote = keep(open("g")), keep(open("lan")), keep(open("remote"))
    local nats = { url = server:url(), subject_prefix = "synaptic.gw" }
    local ng = keep(assert(synaptic.node(g, helpers.p2p_conf { node_id = "G", transport = "nats", nats = nats,
                                                                listen = "tcp://127.0.0.1:0" })))
    local subject, endpoint = ng:address()
    assert.equal("synaptic.gw.node.47", subject)
    assert.matches("^tcp://127%.0%.0%.1:%d+$", endpoint)
    local nl = keep(assert(synaptic.node(lan, helpers.p2p_conf { node_id = "L", peers = { endpoint } })))
    local nr = keep(assert(synaptic.node(remote, helpers.p2p_conf { node_id = "R", transport = "nats", nats = nats })))
    lan:put_weights("from_lan", 0, helpers.weights(64, 1), {})
    remote:put_weights("from_remote", 0, helpers.weights(64, 2), {})
    g:put_weights("from_gateway", 0, helpers.weights(64, 3), {})
    assert.is_true(until_({ ng, nl, nr }, function()
      for _, s in ipairs { g, lan, remote } do
        for _, x in ipairs { "from_lan", "from_remote", "from_gateway" } do
          if not s:get_weights(x, 0) then return false end
        end
      end
      return true
    end, 1000))
    assert.equal(lan:get_weights("from_lan", 0):tobytes(), remote:get_weights("from_lan", 0):tobytes())
    local ids = {}
    for _, p in ipairs(ng:peers()) do ids[p.node_id or p.id] = true end
    assert.is_true(ids.L and ids.R)
    assert.equal(0, ng:stats().dropped)
  end)

  it("the server restarting mid-sync loses nothing either node wrote", function()
    if not server then return pending(why) end
    local a, b = keep(open("a")), keep(open("b"))
    local function node(store, id)
      return keep(assert(synaptic.node(store, helpers.p2p_conf {
        node_id = id, transport = "nats", nats = { url = server:url(), subject_prefix = "synaptic.restart" } })))
    end
    local na, nb = node(a, "A"), node(b, "B")
    for i = 1, 20 do a:put_weights("before", i, helpers.weights(256, i), {}) end
    -- mid-sync: some of them are across, not all
    until_({ na, nb }, function() return b:get_weights("before", 1) ~= nil end)
    server:stop()
    for i = 1, 20 do b:put_weights("during", i, helpers.weights(256, 100 + i), {}) end
    a:put_weights("during_a", 0, { 1, 2 }, {})
    until_({ na, nb }, nil, 20)                 -- published into the client's reconnect buffer, or dropped
    assert(server:start())
    assert.is_true(until_({ na, nb }, function()
      for i = 1, 20 do
        if not b:get_weights("before", i) or not a:get_weights("during", i) then return false end
      end
      return b:get_weights("during_a", 0) ~= nil
    end, 1500))
    assert.is_true(na:stats().reconnects >= 1 and nb:stats().reconnects >= 1)
  end)

  it("synaptic serve --nats: two processes sync through the server and report their subject", function()
    if not server then return pending(why) end
    local dir = helpers.tmpdir("serve-nats")
    for _, name in ipairs { "s1", "s2" } do
      local s = assert(synaptic.open(dir .. "/" .. name))
      s:put_weights("from_" .. name, 0, { 1, 2 }, {})
      s:close()
    end
    local pids, outs = {}, {}
    for i, name in ipairs { "s1", "s2" } do
      outs[i] = dir .. "/" .. name .. ".out"
      local p = io.popen(C.ENV .. q(C.BIN) .. " serve " .. q(dir .. "/" .. name) .. " --nats " .. q(server:url())
                         .. " --nats-prefix synaptic.cli --node-id " .. name .. " --heartbeat 0.2 --json >"
                         .. q(outs[i]) .. " 2>" .. q(outs[i] .. ".err") .. " & echo $!")
      pids[i] = p:read("l")
      p:close()
    end
    local function has(name, expert)
      local s = synaptic.open(dir .. "/" .. name, { read_only = true })
      if not s then return false end
      local w = s:get_weights(expert, 0)
      s:close()
      return w ~= nil
    end
    local ok = false
    for _ = 1, 300 do
      ok = has("s1", "from_s2") and has("s2", "from_s1")
      if ok then break end
      os.execute("sleep 0.05")
    end
    for _, pid in ipairs(pids) do os.execute("kill -INT " .. pid) end
    local lines
    for _ = 1, 200 do
      lines = {}
      for l in (C.slurp(outs[1]) or ""):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
      if #lines >= 2 then break end
      os.execute("sleep 0.05")
    end
    assert.is_true(ok, C.slurp(outs[1] .. ".err"))
    assert.equal("synaptic.cli.node.7331", cjson.decode(lines[1]).address)
    local report = cjson.decode(lines[2])
    assert.equal("SIGINT", report.stopped_by)
    assert.is_true(report.stats.weights_received >= 1)
    local code, _, err = C.run("serve", dir .. "/s1", "--nats-jetstream")
    assert.equal(1, code)
    assert.truthy(err:find("--nats-jetstream needs --nats", 1, true), err)
  end)
end)
