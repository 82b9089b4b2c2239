-- Lua code that runs in the middle of a binding call (an argument's
-- metamethod, a finalizer run by an allocation, the conflict resolver) and
-- closes the store, engine or node the call is using. Each case must end in
-- a clean error or in success, never in a crash: these specs run under ASan
-- in CI (make asan-test), where a use after free fails loudly.
local synaptic = require "synaptic"
local core = require "synaptic.core"
local helpers = require "helpers"

local OPTS = { write_buffer_mb = 1, cache_mb = 1 }

-- The messages a call may end with when its store or engine was closed
-- under it.
local CLEAN = {
  "attempt to use a closed store",
  "attempt to use a closed sync engine",
  "attempt to use a closed node",
  "the store is in use by a running call",
  "in use by a running call",
  "called from inside one of its own calls",
}

local function assert_clean(ok, err)
  if ok then return true end
  err = tostring(err)
  for _, m in ipairs(CLEAN) do
    if err:find(m, 1, true) then return false end
  end
  error("not a clean error: " .. err, 2)
end

-- Calls call() with a finalizer (close) pending, so that the collector runs
-- it at one of the allocations inside the call: the collector is set to do
-- one basic step per allocation, and a step runs up to ten finalizers, most
-- recently marked first. A flag finalizer marked last shows when the
-- fillers' turn has come; with 9 + 10k fillers the close runs at about the
-- (k+1)-th allocation inside the call. (Lua 5.4's collector; it is set back
-- afterwards.) Arguments must be built before, or their own allocations
-- run the close before the call starts.
local FILLERS = { 9, 19, 29, 39 }

local function with_pending_close(close, fillers, call)
  collectgarbage()
  collectgarbage("stop")
  collectgarbage("incremental", 100, 100, 1)   -- a basic step per allocation
  local ran = false
  setmetatable({}, { __gc = close })
  for _ = 1, fillers do setmetatable({}, { __gc = function() end }) end
  setmetatable({}, { __gc = function() ran = true end })
  while not ran do collectgarbage("step", 0) end
  collectgarbage("restart")
  local ok, err = pcall(call)
  collectgarbage("incremental", 200, 100, 13)
  collectgarbage()
  return ok, err
end

-- A table whose every read (and length) closes the store first.
local function closing(store, values, which)
  local mt = {}
  local function close() store:close() end
  if which == "__len" then
    mt.__len = function() close(); return #values end
    mt.__index = values
  else
    mt.__index = function(_, k) close(); return values[k] end
    mt.__len = function() return #values end
  end
  return setmetatable({}, mt)
end

describe("Lua code that closes the store mid-call", function()
  local path, store
  before_each(function()
    path = helpers.tmpdir("cb")
    store = assert(synaptic.open(path, OPTS))
    store:put_weights("e", 0, { 1, 2 })
  end)
  after_each(function()
    store:close()
    collectgarbage()
    helpers.cleanup()
  end)

  local function reopen()
    store:close()
    store = assert(synaptic.open(path, OPTS))
    return store
  end

  it("a weights table whose __index closes the store", function()
    local w = closing(store, { 1, 2, 3 }, "__index")
    assert.is_false(assert_clean(pcall(store.put_weights, store, "e", 0, w)))
    assert.equal("synaptic.store (closed)", tostring(store))
    assert.same({ 1 }, reopen():weight_versions("e", 0))
  end)

  it("a weights table whose __len closes the store", function()
    local w = closing(store, { 1, 2, 3 }, "__len")
    assert.is_false(assert_clean(pcall(store.put_weights, store, "e", 0, w)))
    assert.same({ 1 }, reopen():weight_versions("e", 0))
  end)

  it("a bias table whose __index closes the store", function()
    local b = closing(store, { 1 }, "__index")
    assert.is_false(assert_clean(pcall(store.put_weights, store, "e", 0, { 1, 2 }, b)))
    assert.same({ 1 }, reopen():weight_versions("e", 0))
  end)

  it("a shape list whose __index or __len closes the store", function()
    for _, which in ipairs { "__index", "__len" } do
      local shape = closing(store, { 1, 2 }, which)
      assert.is_false(assert_clean(pcall(store.put_weights, store, "e", 0, { 1, 2 }, nil,
                                         { shape = shape })))
      reopen()
    end
    assert.same({ 1 }, store:weight_versions("e", 0))
  end)

  it("a meta table whose __index (reading shape) closes the store", function()
    local meta = setmetatable({}, { __index = function() store:close(); return { 2 } end })
    assert.is_false(assert_clean(pcall(store.put_weights, store, "e", 0, { 1, 2 }, nil, meta)))
    assert.same({ 1 }, reopen():weight_versions("e", 0))
  end)

  it("a config table with metamethods is read raw: the store stays open", function()
    local cfg = { expert_id = "c", domain = "d", parameter_count = 1, learning_rate = 0.1,
                  architecture = { 1 } }
    local t = setmetatable(cfg, { __index = function() store:close() end,
                                  __len = function() store:close(); return 0 end,
                                  __pairs = function() store:close() end })
    assert.is_true(store:put_config(t))
    assert.equal(0.1, store:get_config("c").learning_rate)
  end)

  it("a state value or checkpoint table with metamethods is read raw", function()
    local mt = { __index = function() store:close() end, __len = function() store:close(); return 9 end }
    assert.is_true(store:put_state("k", setmetatable({ a = 1 }, mt)))
    assert.same({ a = 1 }, store:get_state("k"))
    local id = store:create_checkpoint(setmetatable({ system_version = "x" }, mt))
    assert.is_string(id)
    assert.is_table(store:get_checkpoint(id))
  end)

  it("an id given as a number that a finalizer-driven close could race is converted first", function()
    -- a number id is converted to a string (an allocation) before the store
    -- pointer is taken; a closed store then reports itself
    store:close()
    assert.has_error(function() store:put_state(12, 1) end, "attempt to use a closed store")
    assert.has_error(function() store:get_state(12) end, "attempt to use a closed store")
  end)

  describe("inside store:batch", function()
    it("a weights table that closes the store fails the batch; nothing is written", function()
      local ok, err = pcall(store.batch, store, function(b)
        b:put_state("s", "x")
        b:put_weights("e", 0, closing(store, { 5 }, "__index"))
      end)
      assert.is_false(assert_clean(ok, err))
      reopen()
      assert.is_nil(store:get_state("s"))
      assert.same({ 1 }, store:weight_versions("e", 0))
    end)

    it("a caught close inside the function still commits nothing", function()
      local ok, err = pcall(store.batch, store, function(b)
        b:put_state("s", "x")
        assert_clean(pcall(b.put_weights, b, "e", 0, closing(store, { 5 }, "__len")))
        assert.has_error(function() b:put_state("t", 1) end, "attempt to use a closed store")
      end)
      assert.is_false(assert_clean(ok, err))
      reopen()
      assert.is_nil(store:get_state("s"))
    end)

    it("config and state tables with metamethods inside a batch", function()
      local mt = { __index = function() store:close() end }
      assert.is_true(store:batch(function(b)
        b:put_state("k", setmetatable({ 1, 2 }, mt))
        b:create_checkpoint(setmetatable({ system_version = "y" }, mt))
      end))
      assert.same({ 1, 2 }, store:get_state("k"))
    end)
  end)

  -- A finalizer that closes the store can run inside any allocation a
  -- binding makes: each method, with the close landing at each of its
  -- first allocations in turn.
  it("a finalizer that closes the store, run by the collector inside any method", function()
    store:close()
    local w, b, meta = { 1, 2, 3 }, { 1 }, { shape = { 3 } }
    local value = { a = { 1, 2 } }
    local cfg = { expert_id = "c", domain = "d", parameter_count = 1, learning_rate = 0.1,
                  architecture = { 1 } }
    local cp = { system_version = "gc" }
    local function in_batch(bt) bt:put_weights("e", 1, w) end
    local calls = {
      function(s) return s:put_weights("e", 0, w, b, meta) end,
      function(s) return s:get_weights("e", 0) end,
      function(s) return s:weight_versions("e", 0) end,
      function(s) return s:layers("e") end,
      function(s) return s:put_state(7, value) end,
      function(s) return s:get_state(7) end,
      function(s) return s:record_metric(8, 1.5, 2) end,
      function(s) return s:metrics(8) end,
      function(s) return s:put_config(cfg) end,
      function(s) return s:create_checkpoint(cp) end,
      function(s) return s:list_checkpoints() end,
      function(s) return s:conflicts("e", 0) end,
      function(s) return s:batch(in_batch) end,
      function(s) return s:verify() end,
      function(s) return s:storage_stats() end,
      function(s) return s:backup(path .. "-bk") end,
    }
    local s = assert(synaptic.open(path, OPTS))
    for _, fillers in ipairs(FILLERS) do
      for _, call in ipairs(calls) do
        assert_clean(with_pending_close(function() pcall(s.close, s) end, fillers,
                                        function() return call(s) end))
        -- reopened only when the close went through: opens are the slow part
        if tostring(s):find("closed") then s = assert(synaptic.open(path, OPTS)) end
      end
    end
    s:close()
  end)
end)

describe("sync engine and node callbacks", function()
  after_each(function()
    collectgarbage()
    helpers.cleanup()
  end)

  local function open(tag) return assert(synaptic.open(helpers.tmpdir(tag), OPTS)) end

  it("an engine config table whose __index closes the store", function()
    local s = open("e")
    local cfg = setmetatable({}, { __index = function() s:close() end })
    assert.has_error(function() core.sync_engine(s, cfg) end, "attempt to use a closed store")
  end)

  it("a validated config whose metatable was swapped for one that closes the store", function()
    local s = open("v")
    local cfg = synaptic.p2p_config({ node_id = "A" })
    local raw = {}
    for k, v in pairs(cfg) do raw[k] = v; cfg[k] = nil end
    setmetatable(cfg, { __index = function(_, k) s:close(); return raw[k] end })
    assert.is_false(assert_clean(pcall(synaptic.sync_engine, s, cfg)))
  end)

  it("a node config whose peers list closes the store", function()
    if not core.node then pending("built without the ZeroMQ node") return end
    local s = open("n")
    local peers = setmetatable({}, { __len = function() return 1 end,
                                     __index = function() s:close(); return { endpoint = "tcp://127.0.0.1:1" } end })
    local ok, err = pcall(core.node, s, { node_id = "N", peers = peers })
    assert.is_false(assert_clean(ok, err))
  end)

  it("a node config whose fields come from __index (strings held nowhere else)", function()
    if not core.node then pending("built without the ZeroMQ node") return end
    local s = open("f")
    local cfg = setmetatable({}, { __index = function(_, k)
      if k == "node_id" then return "F" .. ("x"):rep(3) end
      if k == "peers" then return { { endpoint = "tcp://127.0.0.1:" .. (20000 + 1), public = nil } } end
    end })
    local n = core.node(s, cfg)
    collectgarbage()
    assert.equal(1, #n:peers())
    n:close()
    s:close()
  end)

  -- Two engines that disagree about one layer: the resolver runs inside
  -- receive/tick, from inside the C core. make_resolver(side) gives each
  -- engine its own, told which side it serves ("a" or "b").
  local function conflicting(make_resolver)
    local a, b = open("a"), open("b")
    local function cfg(id, side)
      return { node_id = id, conflict_resolution = make_resolver(side), sync_interval_seconds = 2,
               heartbeat_interval_seconds = 1, peer_timeout_seconds = 10 }
    end
    local ea, eb = synaptic.sync_engine(a, cfg("A", "a")), synaptic.sync_engine(b, cfg("B", "b"))
    ea:add_peer("B"); eb:add_peer("A")
    a:put_weights("x", 0, { 1 })
    b:put_weights("x", 0, { 2 })
    local p = { a = a, b = b, ea = ea, eb = eb }
    function p.pump()
      for t = 1, 4 do
        for _, e in ipairs { ea, eb } do assert_clean(pcall(e.tick, e, t)) end
        for _ = 1, 20 do
          local n = 0
          for _, m in ipairs(ea:outbox()) do n = n + 1; assert_clean(pcall(eb.receive, eb, "A", m.bytes)) end
          for _, m in ipairs(eb:outbox()) do n = n + 1; assert_clean(pcall(ea.receive, ea, "B", m.bytes)) end
          if n == 0 then break end
        end
      end
    end
    function p.close() ea:close(); eb:close(); a:close(); b:close() end
    return p
  end

  it("a conflict resolver that closes its store or its engine, or calls its engine back", function()
    local p
    local calls, errors = 0, {}
    local function make_resolver(side)
      return function(x, y)
        calls = calls + 1
        local store, engine = p[side], p["e" .. side]
        for _, f in ipairs {
          function() store:close() end, function() engine:close() end,
          function() engine:tick(100) end, function() engine:stats() end,
          function() engine:outbox() end, function() engine:receive("A", "x") end,
        } do
          local ok, err = pcall(f)
          assert.is_false(ok)
          errors[#errors + 1] = tostring(err)
        end
        return x.origin < y.origin and x or y
      end
    end
    p = conflicting(make_resolver)
    p.pump()
    assert.is_true(calls >= 1)
    for _, e in ipairs(errors) do assert_clean(false, e) end
    -- the resolver's closes were refused: everything is still usable, and
    -- the resolver's answer was used
    assert.same(p.a:get_weights("x", 0):totable(), p.b:get_weights("x", 0):totable())
    p.close()
  end)

  it("a resolver that raises after a refused close falls back; engines keep working", function()
    local p
    p = conflicting(function(side)
      return function() p[side]:close(); return nil end
    end)
    p.pump()
    assert.equal(p.a:get_weights("x", 0):totable()[1], p.b:get_weights("x", 0):totable()[1])
    assert.equal(1, #p.a:conflicts("x", 0))
    p.close()
  end)

  it("a finalizer that closes the engine or its store inside any engine method", function()
    local methods = {
      function(e) return e:outbox() end, function(e) return e:peers() end,
      function(e) return e:stats() end, function(e) return e:sync_now() end,
      function(e) return e:digest() end, function(e) return e:tick(5) end,
      function(e) return e:add_peer(99) end, function(e) return e:remove_peer(98) end,
      function(e) return e:receive(97, "junk") end,
    }
    local path = helpers.tmpdir("g")
    local s, e
    for _, fillers in ipairs(FILLERS) do
      for _, m in ipairs(methods) do
        if not e or tostring(e):find("closed") or tostring(s):find("closed") then
          if e then e:close(); s:close() end
          s = assert(synaptic.open(path, OPTS))
          e = synaptic.sync_engine(s, { node_id = "G" })
          for i = 1, 20 do e:add_peer("p" .. i) end
          e:tick(1)
        end
        assert_clean(with_pending_close(function() pcall(e.close, e); pcall(s.close, s) end,
                                        fillers, function() return m(e) end))
      end
    end
    e:close(); s:close()
  end)

  it("a finalizer that closes the node or its store inside any node method", function()
    if not core.node then pending("built without the ZeroMQ node") return end
    local methods = {
      function(n) return n:poll(0) end, function(n) return n:peers() end,
      function(n) return n:stats() end, function(n) return n:sync_now() end,
      function(n) return n:connect("tcp://127.0.0.1:1") end, function(n) return n:address() end,
    }
    for _, fillers in ipairs(FILLERS) do
      for _, m in ipairs(methods) do
        local s = open("nd")
        local n = synaptic.node(s, { node_id = "N", listen = "tcp://127.0.0.1:0" })
        assert_clean(with_pending_close(function() pcall(n.close, n); pcall(s.close, s) end,
                                        fillers, function() return m(n) end))
        n:close(); s:close()
      end
    end
  end)
end)
