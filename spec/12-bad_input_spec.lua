-- Bad input of every kind gets a clear error (raised for a wrong argument,
-- nil + message for the outside world) and loses nothing already stored.
local synaptic = require "synaptic"
local helpers = require "helpers"
local read_file, write_file, listdir, f32_bytes = helpers.read_file, helpers.write_file, helpers.listdir, helpers.f32_bytes

local NAN, INF = 0 / 0, math.huge

-- fn must raise; the message must mention `name` (the function) and match
-- every extra pattern given.
local function raises(fn, name, ...)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error mentioning " .. name .. ", but the call succeeded")
  err = tostring(err)
  assert(err:find(name, 1, true), "error does not name " .. name .. ": " .. err)
  for i = 1, select("#", ...) do
    local pat = select(i, ...)
    assert.matches(pat, err)
  end
  return err
end

local W = helpers.weights(300, 11)
local B = helpers.weights(20, 12)
local W2 = helpers.weights(300, 13)

local CFG = {
  expert_id = "coding", domain = "coding", parameter_count = 100,
  learning_rate = 0.01, architecture = { layers = { 4, 8 } },
}

local function good_config(over)
  local c = {}
  for k, v in pairs(CFG) do c[k] = v end
  for k, v in pairs(over or {}) do c[k] = v end
  return c
end

describe("bad input", function()
  -- One seeded store shared by the tests that only feed it bad input: every
  -- test checks it is still intact, so damage accumulates and shows. Tests
  -- that write good data or reopen use a fresh one.
  local store, path, cp_id

  local function seed(s)
    assert.equal(1, s:put_weights("coding", 0, W, B, { shape = { 15, 20 } }))
    assert.equal(2, s:put_weights("coding", 0, W2, nil))
    s:put_config(good_config())
    s:put_state("mode", { level = 3, name = "warm" })
    s:record_metric("loss", 0.25, 100)
    return s:create_checkpoint({ system_version = "seed" })
  end

  -- everything seed() wrote is still there, unchanged
  local function intact(s, cp)
    s = s or store
    cp = cp or cp_id
    assert.same({ 1, 2 }, s:weight_versions("coding", 0))
    local w, b, info = s:get_weights("coding", 0, 1)
    assert.equal(f32_bytes(W), w:tobytes())
    assert.equal(f32_bytes(B), b:tobytes())
    assert.same({ 15, 20 }, info.shape)
    local w2, b2 = s:get_weights("coding", 0)
    assert.equal(f32_bytes(W2), w2:tobytes())
    assert.equal(0, #b2)
    local c = s:get_config("coding")
    assert.equal(0.01, c.learning_rate)
    assert.same({ layers = { 4, 8 } }, c.architecture)
    assert.same({ level = 3, name = "warm" }, s:get_state("mode"))
    assert.same({ { timestamp = 100, value = 0.25 } }, helpers.points(s:metrics("loss")))
    assert.same({ cp }, s:list_checkpoints())
    assert.same({ "coding" }, s:list_experts())
  end

  -- a fresh seeded store: returns it, its path and its checkpoint id
  local function fresh()
    local p = helpers.tmpdir("bad-fresh") .. "/db"
    local s = assert(synaptic.open(p))
    return s, p, seed(s)
  end

  setup(function()
    path = helpers.tmpdir("bad") .. "/db"
    store = assert(synaptic.open(path))
    cp_id = seed(store)
  end)

  teardown(function()
    if store then store:close() end
    store = nil
    helpers.cleanup()
  end)

  describe("wrong argument types", function()
    it("put_weights", function()
      raises(function() store:put_weights({}, 0, { 1 }) end, "put_weights", "bad argument")
      raises(function() store:put_weights(nil, 0, { 1 }) end, "put_weights", "bad argument")
      raises(function() store:put_weights(true, 0, { 1 }) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", "x", { 1 }) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", nil, { 1 }) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", {}, { 1 }) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 1.5, { 1 }) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, "1,2,3") end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, 5) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, nil) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, true) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, { 1 }, 5) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, { 1 }, "x") end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, { 1 }, true) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, { 1 }, nil, 5) end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, { 1 }, nil, "shape") end, "put_weights", "bad argument")
      raises(function() store:put_weights("e", 0, { 1 }, nil, { foo = 1 }) end, "put_weights")
      raises(function() store:put_weights("e", 0, { 1 }, nil, { shape = "1" }) end, "put_weights")
      raises(function() store:put_weights("e", 0, { 1 }, nil, { shape = { "1" } }) end, "put_weights")
      raises(function() store.put_weights(nil, "e", 0, { 1 }) end, "put_weights", "bad argument")
      raises(function() store.put_weights({}, "e", 0, { 1 }) end, "put_weights", "bad argument")
      intact()
      assert.is_nil(store:get_weights("e", 0))
      assert.same({}, store:weight_versions("e", 0))
    end)

    it("put_weights with a non-number element in a table", function()
      local err = raises(function() store:put_weights("coding", 0, { 1, "two", 3 }) end, "2")
      assert.matches("string", err)
      raises(function() store:put_weights("coding", 0, { 1, 2 }, { 1, {} }) end, "2")
      raises(function() store:put_weights("coding", 0, { 1, 2, true }) end, "3")
      intact()
    end)

    it("get_weights and weight_versions", function()
      raises(function() store:get_weights({}, 0) end, "get_weights", "bad argument")
      raises(function() store:get_weights(nil, 0) end, "get_weights", "bad argument")
      raises(function() store:get_weights("coding") end, "get_weights", "bad argument")
      raises(function() store:get_weights("coding", "x") end, "get_weights", "bad argument")
      raises(function() store:get_weights("coding", 0.5) end, "get_weights", "bad argument")
      raises(function() store:get_weights("coding", 0, "x") end, "get_weights", "bad argument")
      raises(function() store:get_weights("coding", 0, 1.5) end, "get_weights", "bad argument")
      raises(function() store:get_weights("coding", 0, -1) end, "get_weights")
      raises(function() store:get_weights("coding", 0, {}) end, "get_weights", "bad argument")
      raises(function() store:weight_versions({}, 0) end, "weight_versions", "bad argument")
      raises(function() store:weight_versions("coding") end, "weight_versions", "bad argument")
      raises(function() store:weight_versions("coding", "x") end, "weight_versions", "bad argument")
      raises(function() store.get_weights(42, "coding", 0) end, "get_weights", "bad argument")
      intact()
    end)

    it("configs", function()
      raises(function() store:put_config() end, "put_config", "bad argument")
      raises(function() store:put_config(5) end, "put_config", "bad argument")
      raises(function() store:put_config("coding") end, "put_config", "bad argument")
      raises(function() store:get_config({}) end, "get_config", "bad argument")
      raises(function() store:get_config() end, "get_config", "bad argument")
      intact()
    end)

    it("checkpoints", function()
      raises(function() store:create_checkpoint(5) end, "create_checkpoint", "bad argument")
      raises(function() store:create_checkpoint("x") end, "create_checkpoint", "bad argument")
      raises(function() store:create_checkpoint(true) end, "create_checkpoint", "bad argument")
      raises(function() store:get_checkpoint({}) end, "get_checkpoint", "bad argument")
      raises(function() store:get_checkpoint() end, "get_checkpoint", "bad argument")
      raises(function() store:restore_checkpoint({}) end, "restore_checkpoint", "bad argument")
      raises(function() store:restore_checkpoint() end, "restore_checkpoint", "bad argument")
      raises(function() store:delete_checkpoint({}) end, "delete_checkpoint", "bad argument")
      raises(function() store:delete_checkpoint() end, "delete_checkpoint", "bad argument")
      intact()
    end)

    it("state", function()
      raises(function() store:put_state({}, 1) end, "put_state", "bad argument")
      raises(function() store:put_state(nil, 1) end, "put_state", "bad argument")
      raises(function() store:put_state("mode") end, "put_state", "bad argument")
      raises(function() store:put_state("mode", print) end, "put_state", "function")
      raises(function() store:put_state("mode", function() end) end, "put_state", "function")
      raises(function() store:put_state("mode", coroutine.create(print)) end, "put_state", "thread")
      raises(function() store:put_state("mode", io.stdout) end, "put_state", "userdata")
      raises(function() store:put_state("mode", { ok = 1, bad = print }) end, "put_state", "function")
      raises(function() store:put_state("mode", store) end, "put_state")
      raises(function() store:get_state({}) end, "get_state", "bad argument")
      raises(function() store:get_state() end, "get_state", "bad argument")
      intact()
    end)

    it("state nested too deeply", function()
      local t = {}
      local cur = t
      for _ = 1, 200 do cur.x = {}; cur = cur.x end
      raises(function() store:put_state("mode", t) end, "put_state")
      intact()
    end)

    it("state with a reference cycle", function()
      local t = { a = 1 }
      t.self = t
      raises(function() store:put_state("mode", t) end, "put_state")
      intact()
    end)

    it("metrics", function()
      raises(function() store:record_metric({}, 1) end, "record_metric", "bad argument")
      raises(function() store:record_metric(nil, 1) end, "record_metric", "bad argument")
      raises(function() store:record_metric("loss") end, "record_metric", "bad argument")
      raises(function() store:record_metric("loss", "x") end, "record_metric", "bad argument")
      raises(function() store:record_metric("loss", {}) end, "record_metric", "bad argument")
      raises(function() store:record_metric("loss", 1, "x") end, "record_metric", "bad argument")
      raises(function() store:record_metric("loss", 1, {}) end, "record_metric", "bad argument")
      raises(function() store:metrics({}) end, "metrics", "bad argument")
      raises(function() store:metrics() end, "metrics", "bad argument")
      raises(function() store:metrics("loss", "x") end, "metrics", "bad argument")
      raises(function() store:metrics("loss", 0, {}) end, "metrics", "bad argument")
      intact()
    end)

    it("batch, backup and maintenance", function()
      raises(function() store:batch() end, "batch", "bad argument")
      raises(function() store:batch(5) end, "batch", "bad argument")
      raises(function() store:batch({}) end, "batch", "bad argument")
      raises(function() store:backup() end, "backup", "bad argument")
      raises(function() store:backup({}) end, "backup", "bad argument")
      raises(function() synaptic.list_backups() end, "list_backups", "bad argument")
      raises(function() synaptic.list_backups({}) end, "list_backups", "bad argument")
      raises(function() synaptic.restore_backup({}, "x") end, "restore_backup", "bad argument")
      raises(function() synaptic.restore_backup("x") end, "restore_backup", "bad argument")
      raises(function() synaptic.restore_backup("x", "y", "z") end, "restore_backup", "bad argument")
      raises(function() synaptic.restore_backup("x", "y", -1) end, "restore_backup", "bad argument")
      raises(function() store.verify(nil) end, "verify", "bad argument")
      raises(function() store.stats(5) end, "stats", "bad argument")
      intact()
    end)

    it("open", function()
      raises(function() synaptic.open() end, "open", "bad argument")
      raises(function() synaptic.open(5) end, "open", "bad argument")
      raises(function() synaptic.open({}) end, "open", "bad argument")
      raises(function() synaptic.open(path .. "x", 5) end, "open", "bad argument")
      raises(function() synaptic.open(path .. "x", "fast") end, "open", "bad argument")
      raises(function() synaptic.open(path .. "x", { sync_writes = "yes" }) end, "open", "sync_writes")
      raises(function() synaptic.open(path .. "x", { read_only = 1 }) end, "open", "read_only")
      raises(function() synaptic.open(path .. "x", { write_buffer_mb = "big" }) end, "open", "write_buffer_mb")
      raises(function() synaptic.open(path .. "x", { write_buffer_mb = -1 }) end, "open", "write_buffer_mb")
      raises(function() synaptic.open(path .. "x", { write_buffer_mb = 0 }) end, "open", "write_buffer_mb")
      raises(function() synaptic.open(path .. "x", { write_buffer_mb = 1.5 }) end, "open", "write_buffer_mb")
      raises(function() synaptic.open(path .. "x", { cache_mb = 1e12 }) end, "open", "cache_mb")
      raises(function() synaptic.open(path .. "x", { max_weight_versions = -2 }) end, "open", "max_weight_versions")
      raises(function() synaptic.open(path .. "x", { compression = 5 }) end, "open", "compression")
      raises(function() synaptic.open("") end, "open")
      -- none of these created a store
      local f = io.open(path .. "x/CURRENT")
      assert.is_nil(f)
      if f then f:close() end
    end)

    it("floats", function()
      raises(function() synaptic.floats(true) end, "floats", "bad argument")
      raises(function() synaptic.floats() end, "floats", "bad argument")
      raises(function() synaptic.floats(-1) end, "floats", "bad argument")
      raises(function() synaptic.floats(1.5) end, "floats", "bad argument")
      raises(function() synaptic.floats("abc") end, "floats", "bad argument")
      raises(function() synaptic.floats({ 1, "x" }) end, "2")
      local a = synaptic.floats(3)
      raises(function() return a[0] end, "floats", "out of range")
      assert.is_nil(a[4])   -- one past the end reads as nil (ipairs)
      raises(function() return a[5] end, "floats", "out of range")
      raises(function() a[4] = 1 end, "floats", "out of range")
      raises(function() a[1] = "x" end, "bad argument")
    end)
  end)

  describe("ids", function()
    local id256 = string.rep("x", 256)
    local id257 = string.rep("x", 257)

    it("an empty id is refused everywhere", function()
      assert.has_error(function() store:put_weights("", 0, { 1 }) end,
        "put_weights: expert_id must not be empty")
      raises(function() store:get_weights("", 0) end, "get_weights", "empty")
      raises(function() store:weight_versions("", 0) end, "weight_versions", "empty")
      raises(function() store:put_config(good_config({ expert_id = "" })) end, "put_config", "empty")
      raises(function() store:get_config("") end, "get_config", "empty")
      raises(function() store:put_state("", 1) end, "put_state", "empty")
      raises(function() store:get_state("") end, "get_state", "empty")
      raises(function() store:record_metric("", 1) end, "record_metric", "empty")
      raises(function() store:metrics("") end, "metrics", "empty")
      raises(function() store:get_checkpoint("") end, "get_checkpoint", "empty")
      raises(function() store:delete_checkpoint("") end, "delete_checkpoint", "empty")
      raises(function() store:restore_checkpoint("") end, "restore_checkpoint", "empty")
      raises(function()
        store:create_checkpoint({ expert_states = { { expert_id = "" } } })
      end, "create_checkpoint", "empty")
      intact()
    end)

    it("an id of 257 bytes is refused, 256 is fine", function()
      raises(function() store:put_weights(id257, 0, { 1 }) end, "put_weights", "256")
      raises(function() store:get_weights(id257, 0) end, "get_weights", "256")
      raises(function() store:weight_versions(id257, 0) end, "weight_versions", "256")
      raises(function() store:put_config(good_config({ expert_id = id257 })) end, "put_config", "256")
      raises(function() store:get_config(id257) end, "get_config", "256")
      raises(function() store:put_state(id257, 1) end, "put_state", "256")
      raises(function() store:get_state(id257) end, "get_state", "256")
      raises(function() store:record_metric(id257, 1) end, "record_metric", "256")
      raises(function() store:metrics(id257) end, "metrics", "256")
      intact()
    end)

    it("an id of 256 bytes is fine everywhere", function()
      local store = fresh()
      assert.equal(1, store:put_weights(id256, 0, { 1, 2 }))
      assert.same({ 1, 2 }, store:get_weights(id256, 0):totable())
      assert.same({ 1 }, store:weight_versions(id256, 0))
      assert.is_true(store:put_config(good_config({ expert_id = id256 })))
      assert.equal(id256, store:get_config(id256).expert_id)
      assert.is_true(store:put_state(id256, "v"))
      assert.equal("v", store:get_state(id256))
      assert.is_true(store:record_metric(id256, 5, 1))
      assert.same({ { timestamp = 1, value = 5 } }, helpers.points(store:metrics(id256)))
      local id = store:create_checkpoint({})
      local pinned = false
      for _, p in ipairs(store:get_checkpoint(id).pins) do
        if p.expert_id == id256 then pinned = true end
      end
      assert.is_true(pinned)
      assert.is_true(store:restore_checkpoint(id))
      local ok, report = store:verify()
      assert.is_true(ok, report and report.problems[1] and report.problems[1].error)
      store:close()
    end)

    it("an id with a NUL byte is refused", function()
      raises(function() store:put_weights("cod\0ing", 0, { 1 }) end, "put_weights", "NUL")
      raises(function() store:put_weights("coding\0", 0, { 1 }) end, "put_weights", "NUL")
      raises(function() store:get_weights("coding\0", 0) end, "get_weights", "NUL")
      raises(function() store:weight_versions("coding\0", 0) end, "weight_versions", "NUL")
      raises(function() store:put_config(good_config({ expert_id = "a\0b" })) end, "put_config", "NUL")
      raises(function() store:get_config("coding\0") end, "get_config", "NUL")
      raises(function() store:put_state("a\0b", 1) end, "put_state", "NUL")
      raises(function() store:get_state("mode\0") end, "get_state", "NUL")
      raises(function() store:record_metric("loss\0", 1, 100) end, "record_metric", "NUL")
      raises(function() store:metrics("loss\0") end, "metrics", "NUL")
      intact()
    end)
  end)

  describe("layers", function()
    it("a negative layer is refused", function()
      assert.has_error(function() store:put_weights("coding", -1, { 1 }) end,
        "put_weights: layer must not be negative")
      raises(function() store:get_weights("coding", -1) end, "get_weights", "negative")
      raises(function() store:weight_versions("coding", -1) end, "weight_versions", "negative")
      raises(function() store:put_weights("coding", math.mininteger, { 1 }) end, "put_weights")
      intact()
    end)

    it("a huge layer is refused", function()
      raises(function() store:put_weights("coding", 2 ^ 32, { 1 }) end, "put_weights")
      raises(function() store:put_weights("coding", math.maxinteger, { 1 }) end, "put_weights")
      raises(function() store:get_weights("coding", 2 ^ 32) end, "get_weights")
      intact()
    end)

    it("a huge version reads as absent", function()
      assert.is_nil(store:get_weights("coding", 0, 2 ^ 40))
      assert.is_nil(store:get_weights("coding", 0, math.maxinteger))
    end)
  end)

  describe("weights", function()
    local bad_values = { { "NaN", NAN }, { "inf", INF }, { "-inf", -INF } }

    for _, case in ipairs(bad_values) do
      local label, x = case[1], case[2]

      it("refuses " .. label .. " in weights (table), writing nothing", function()
        local w = helpers.weights(50, 3)
        w[17] = x
        raises(function() store:put_weights("coding", 0, w) end, "put_weights", "weights%[17%]")
        raises(function() store:put_weights("fresh", 0, w) end, "put_weights")
        assert.same({ 1, 2 }, store:weight_versions("coding", 0))
        assert.same({}, store:weight_versions("fresh", 0))
        intact()
      end)

      it("refuses " .. label .. " in weights (floats), writing nothing", function()
        local w = synaptic.floats(helpers.weights(50, 3))
        w[50] = x
        raises(function() store:put_weights("coding", 0, w) end, "put_weights", "weights%[50%]")
        assert.same({ 1, 2 }, store:weight_versions("coding", 0))
        intact()
      end)

      it("refuses " .. label .. " in biases (table and floats), writing nothing", function()
        local b = helpers.weights(5, 4)
        b[1] = x
        raises(function() store:put_weights("coding", 0, { 1, 2 }, b) end, "put_weights", "biases%[1%]")
        local fb = synaptic.floats(helpers.weights(5, 4))
        fb[5] = x
        raises(function() store:put_weights("coding", 0, { 1, 2 }, fb) end, "put_weights", "biases%[5%]")
        assert.same({ 1, 2 }, store:weight_versions("coding", 0))
        intact()
      end)
    end

    it("refuses a value that overflows float32", function()
      -- 1e39 is finite as a double but infinite as a float32
      raises(function() store:put_weights("coding", 0, { 1, 1e39 }) end, "put_weights")
      raises(function() store:put_weights("coding", 0, { 1 }, { -1e39 }) end, "put_weights")
      intact()
    end)

    it("refuses empty weights", function()
      raises(function() store:put_weights("coding", 0, {}) end, "put_weights", "empty")
      raises(function() store:put_weights("coding", 0, synaptic.floats(0)) end, "put_weights", "empty")
      intact()
    end)

    it("refuses floats beyond the size cap", function()
      raises(function() synaptic.floats(2 ^ 40) end, "floats")
      raises(function() synaptic.floats(math.maxinteger) end, "floats")
      raises(function() synaptic.floats(64 * 1024 * 1024 + 1) end, "floats")
      intact()
    end)

    it("refuses a shape that does not describe the weights", function()
      local w = helpers.weights(12, 5)
      raises(function() store:put_weights("coding", 0, w, nil, { shape = { 3, 5 } }) end,
        "put_weights", "shape")
      raises(function() store:put_weights("coding", 0, w, nil, { shape = { 13 } }) end,
        "put_weights", "shape")
      raises(function() store:put_weights("coding", 0, w, nil, { shape = { 0 } }) end,
        "put_weights", "shape")
      raises(function() store:put_weights("coding", 0, w, nil, { shape = { -3, -4 } }) end,
        "put_weights", "shape")
      raises(function() store:put_weights("coding", 0, w, nil, { shape = { 3, 4.5 } }) end,
        "put_weights", "shape")
      raises(function() store:put_weights("coding", 0, w, nil, { shape = {} }) end,
        "put_weights", "shape")
      raises(function()
        store:put_weights("coding", 0, w, nil, { shape = { 1, 1, 1, 1, 1, 1, 1, 1, 12 } })
      end, "put_weights", "shape")
      raises(function()
        store:put_weights("coding", 0, w, nil, { shape = { 2 ^ 40, 2 ^ 40 } })
      end, "put_weights", "shape")
      assert.same({ 1, 2 }, store:weight_versions("coding", 0))
      intact()
    end)

    it("accepts a shape that describes the weights", function()
      local s = fresh()
      local w = helpers.weights(12, 5)
      assert.equal(3, s:put_weights("coding", 0, w, nil, { shape = { 3, 4 } }))
      assert.same({ 3, 4 }, select(3, s:get_weights("coding", 0)).shape)
      assert.equal(4, s:put_weights("coding", 0, w, nil, { shape = { 1, 12, 1 } }))
      assert.same({ 1, 12, 1 }, select(3, s:get_weights("coding", 0)).shape)
      s:close()
    end)
  end)

  describe("open options", function()
    it("refuses an unknown option", function()
      assert.has_error(function() synaptic.open(path .. "-new", { compresion = true }) end,
        "open: unknown option compresion")
      raises(function() synaptic.open(path .. "-new", { [1] = true }) end, "open")
      assert.is_nil(io.open(path .. "-new/CURRENT"))
    end)

    it("refuses an unknown codec", function()
      raises(function() synaptic.open(path .. "-new", { compression = "zstd" }) end, "open", "zstd")
      raises(function() synaptic.open(path .. "-new", { compression = "" }) end, "open")
      raises(function() synaptic.open(path .. "-new", { compression = "GZIP!" }) end, "open")
      assert.is_nil(io.open(path .. "-new/CURRENT"))
    end)

    it("accepts every documented codec and boolean", function()
      for _, c in ipairs({ true, false, "none", "gzip", "shuffle", "bf16" }) do
        local s = assert(synaptic.open(helpers.tmpdir("codec"), { compression = c }))
        assert.equal(1, s:put_weights("e", 0, { 0.5, 0.25 }))
        assert.same({ 0.5, 0.25 }, s:get_weights("e", 0):totable())
        s:close()
      end
    end)
  end)

  describe("configs", function()
    it("refuses a config missing a required field", function()
      for _, field in ipairs({ "expert_id", "domain", "parameter_count", "learning_rate", "architecture" }) do
        local c = good_config({ learning_rate = 99 })
        c[field] = nil
        raises(function() store:put_config(c) end, "put_config", field)
      end
      raises(function() store:put_config({}) end, "put_config")
      intact()
    end)

    it("refuses a field of the wrong type", function()
      local cases = {
        { expert_id = 5 },
        { expert_id = { "coding" } },
        { domain = 5 },
        { domain = {} },
        { parameter_count = "many" },
        { parameter_count = 1.5 },
        { parameter_count = -1 },
        { learning_rate = "fast" },
        { learning_rate = {} },
        { learning_rate = true },
        { created_at = "yesterday" },
      }
      for _, over in ipairs(cases) do
        local field = next(over)
        raises(function() store:put_config(good_config(over)) end, "put_config", field)
      end
      intact()
    end)

    it("refuses an unknown field", function()
      raises(function() store:put_config(good_config({ learnin_rate = 0.2 })) end,
        "put_config", "learnin_rate")
      local c = good_config()
      c[1] = "positional"
      raises(function() store:put_config(c) end, "put_config")
      intact()
    end)

    it("refuses NaN or infinite numbers", function()
      raises(function() store:put_config(good_config({ learning_rate = NAN })) end,
        "put_config", "learning_rate")
      raises(function() store:put_config(good_config({ learning_rate = INF })) end,
        "put_config", "learning_rate")
      raises(function() store:put_config(good_config({ architecture = { scale = NAN } })) end,
        "put_config", "architecture")
      raises(function() store:put_config(good_config({ architecture = { 1, -INF } })) end,
        "put_config", "architecture")
      intact()
    end)

    it("refuses an architecture holding a function", function()
      raises(function() store:put_config(good_config({ architecture = { f = print } })) end,
        "put_config")
      intact()
    end)
  end)

  describe("checkpoints", function()
    it("refuses a bad expert_states entry", function()
      local cases = {
        { expert_states = { 5 } },
        { expert_states = { "coding" } },
        { expert_states = { { activation_count = 1 } } },
        { expert_states = { { expert_id = 5 } } },
        { expert_states = { { expert_id = "coding", activation_count = -1 } } },
        { expert_states = { { expert_id = "coding", activation_count = 1.5 } } },
        { expert_states = { { expert_id = "coding", success_rate = "high" } } },
        { expert_states = { { expert_id = "coding", success_rate = NAN } } },
        { expert_states = { { expert_id = "coding", last_updated = INF } } },
        { expert_states = { { expert_id = "coding", memory_usage = -5 } } },
        { expert_states = { { expert_id = "coding", colour = "red" } } },
        { expert_states = { { expert_id = "coding" }, { expert_id = "" } } },
        { expert_states = { a = { expert_id = "coding" } } },
        { expert_states = "coding" },
      }
      for i, cp in ipairs(cases) do
        local err = raises(function() store:create_checkpoint(cp) end, "create_checkpoint")
        assert.matches("expert_states", err, 1, false, "case " .. i)
      end
      assert.same({ cp_id }, store:list_checkpoints())
      intact()
    end)

    it("refuses bad global_metrics, system_version, metadata and unknown fields", function()
      local cases = {
        { global_metrics = { total_requests = -1 } },
        { global_metrics = { average_response_time = NAN } },
        { global_metrics = { uptime = "long" } },
        { global_metrics = { bogus = 1 } },
        { global_metrics = 5 },
        { system_version = 5 },
        { metadata = { x = NAN } },
        { metadata = { f = print } },
        { unknown_field = 1 },
        { pins = 5 },
      }
      for _, cp in ipairs(cases) do
        raises(function() store:create_checkpoint(cp) end, "create_checkpoint")
      end
      assert.same({ cp_id }, store:list_checkpoints())
      intact()
    end)
  end)

  describe("metrics and state", function()
    it("refuses NaN and infinite metric values and timestamps", function()
      raises(function() store:record_metric("loss", NAN, 1) end, "record_metric", "NaN")
      raises(function() store:record_metric("loss", INF, 1) end, "record_metric")
      raises(function() store:record_metric("loss", -INF, 1) end, "record_metric")
      raises(function() store:record_metric("loss", 1, NAN) end, "record_metric")
      raises(function() store:record_metric("loss", 1, INF) end, "record_metric")
      raises(function() store:metrics("loss", NAN) end, "metrics")
      raises(function() store:metrics("loss", 0, NAN) end, "metrics")
      intact()
    end)

    it("refuses NaN and infinite numbers in state values", function()
      raises(function() store:put_state("mode", NAN) end, "put_state")
      raises(function() store:put_state("mode", { level = INF }) end, "put_state")
      raises(function() store:put_state("mode", { { { -INF } } }) end, "put_state")
      intact()
    end)
  end)

  describe("read_only", function()
    local function refused(fn)
      local ok, r = pcall(fn)
      assert(not ok or r == nil, "a write to a read-only store was accepted")
    end

    it("refuses every kind of write and keeps the data", function()
      local s, p, cp = fresh()
      s:close()
      s = assert(synaptic.open(p, { read_only = true }))
      intact(s, cp)
      refused(function() return s:put_weights("coding", 0, { 1, 2 }) end)
      refused(function() return s:put_weights("new", 0, { 1, 2 }) end)
      refused(function() return s:put_config(good_config({ domain = "changed" })) end)
      refused(function() return s:create_checkpoint({}) end)
      refused(function() return s:delete_checkpoint(cp) end)
      refused(function() return s:restore_checkpoint(cp) end)
      refused(function() return s:put_state("mode", "changed") end)
      refused(function() return s:put_state("mode", nil) end)
      refused(function() return s:record_metric("loss", 9, 200) end)
      refused(function()
        return s:batch(function(b) b:put_state("mode", "changed") end)
      end)
      refused(function() return s:compact() end)
      -- reading works
      intact(s, cp)
      local ok = s:verify()
      assert.is_true(ok)
      s:close()
      -- and nothing changed on disk
      s = assert(synaptic.open(p))
      intact(s, cp)
      s:close()
    end)

    it("the message says the store is read-only", function()
      local s = assert(synaptic.open(path, { read_only = true }))
      local ok, err = pcall(function() return s:put_state("k", 1) end)
      if ok then err = select(2, s:put_state("k", 1)) end
      s:close()
      assert.matches("read%-only", tostring(err))
      intact()
    end)
  end)
end)
