-- store:batch (all or nothing), and the store object's lifecycle: close,
-- <close>, use after close, tostring.
local synaptic = require "synaptic"
local helpers = require "helpers"
local f32_bytes = helpers.f32_bytes

local CFG = { expert_id = "e", domain = "d", parameter_count = 10,
              learning_rate = 0.1, architecture = { 2, 5 } }

describe("batch", function()
  local path, store

  before_each(function()
    path = helpers.tmpdir("batch") .. "/db"
    store = assert(synaptic.open(path))
    store:put_weights("e", 0, { 1, 1 })
    store:put_state("s", "orig")
  end)

  after_each(function()
    if store then store:close() end
    store = nil
  end)

  teardown(function()
    helpers.cleanup()
  end)

  local function untouched()
    assert.same({ 1 }, store:weight_versions("e", 0))
    assert.same({ 1, 1 }, store:get_weights("e", 0):totable())
    assert.same({}, store:weight_versions("e", 1))
    assert.same({}, store:weight_versions("new", 0))
    assert.is_nil(store:get_config("e"))
    assert.equal("orig", store:get_state("s"))
    assert.is_nil(store:get_state("t"))
    assert.same({}, store:metrics("m"))
    assert.same({}, store:list_checkpoints())
    assert.same({ "e" }, store:list_experts())
  end

  local function write_everything(b)
    assert.equal(2, b:put_weights("e", 0, { 2, 2 }))
    assert.equal(1, b:put_weights("e", 1, { 3 }, { 4 }, { shape = { 1 } }))
    assert.equal(1, b:put_weights("new", 0, helpers.weights(5000, 1)))
    assert.is_true(b:put_config(CFG))
    assert.is_true(b:put_state("s", "changed"))
    assert.is_true(b:put_state("t", { 1, 2 }))
    assert.is_true(b:record_metric("m", 1, 1))
    assert.is_string(b:create_checkpoint({ system_version = "in batch" }))
  end

  it("commits every kind of write together and returns true", function()
    assert.is_true(store:batch(write_everything))
    assert.same({ 1, 2 }, store:weight_versions("e", 0))
    assert.same({ 2, 2 }, store:get_weights("e", 0):totable())
    assert.same({ 3 }, store:get_weights("e", 1):totable())
    assert.equal(f32_bytes(helpers.weights(5000, 1)), store:get_weights("new", 0):tobytes())
    assert.equal(0.1, store:get_config("e").learning_rate)
    assert.equal("changed", store:get_state("s"))
    assert.same({ 1, 2 }, store:get_state("t"))
    assert.same({ { timestamp = 1, value = 1 } }, helpers.points(store:metrics("m")))
    assert.equal(1, #store:list_checkpoints())
    assert.same({ "e", "new" }, store:list_experts())
    assert.is_true((store:verify()))
  end)

  it("an error in the function writes nothing and is re-raised unchanged", function()
    local ok, err = pcall(store.batch, store, function(b)
      write_everything(b)
      error("boom", 0)
    end)
    assert.is_false(ok)
    assert.equal("boom", err)
    untouched()
  end)

  it("re-raises the very error object, not a copy or a string", function()
    local obj = setmetatable({ code = 42 }, { __tostring = function() return "custom" end })
    local ok, err = pcall(store.batch, store, function(b)
      b:put_state("s", "changed")
      error(obj)
    end)
    assert.is_false(ok)
    assert.is_true(rawequal(obj, err))
    untouched()
  end)

  it("keeps the position of a string error", function()
    local ok, err = pcall(function()
      store:batch(function(b)
        b:put_weights("e", 0, { 5 })
        error("failed here")
      end)
    end)
    assert.is_false(ok)
    assert.matches("13%-batch_spec%.lua:%d+: failed here$", err)
    untouched()
  end)

  it("a bad argument inside the function writes nothing", function()
    local ok, err = pcall(function()
      store:batch(function(b)
        b:put_weights("e", 0, { 2, 2 })
        b:put_state("s", "changed")
        b:put_weights("e", 1, { 1, 0 / 0 })
      end)
    end)
    assert.is_false(ok)
    assert.matches("put_weights: weights%[2%] is NaN", err)
    untouched()

    ok, err = pcall(function()
      store:batch(function(b)
        b:record_metric("m", 3, 3)
        b:put_config({ expert_id = "e" })
      end)
    end)
    assert.is_false(ok)
    assert.matches("put_config", err)
    untouched()
  end)

  it("a runtime error inside the function writes nothing", function()
    local ok = pcall(store.batch, store, function(b)
      b:put_state("s", "changed")
      local x = nil
      return x.field
    end)
    assert.is_false(ok)
    untouched()
  end)

  it("two put_weights to one layer get consecutive versions", function()
    local v = {}
    store:batch(function(b)
      v[1] = b:put_weights("e", 0, { 10 })
      v[2] = b:put_weights("e", 0, { 20 })
      v[3] = b:put_weights("fresh", 3, { 30 })
      v[4] = b:put_weights("fresh", 3, { 40 })
      v[5] = b:put_weights("e", 0, { 50 })
    end)
    assert.same({ 2, 3, 1, 2, 4 }, v)
    assert.same({ 1, 2, 3, 4 }, store:weight_versions("e", 0))
    assert.same({ 10 }, store:get_weights("e", 0, 2):totable())
    assert.same({ 20 }, store:get_weights("e", 0, 3):totable())
    assert.same({ 50 }, store:get_weights("e", 0):totable())
    assert.same({ 1, 2 }, store:weight_versions("fresh", 3))
    assert.same({ 40 }, store:get_weights("fresh", 3):totable())
    -- and the next write outside the batch carries on
    assert.equal(5, store:put_weights("e", 0, { 60 }))
  end)

  it("many writes in one batch all land", function()
    store:batch(function(b)
      for i = 1, 200 do
        b:put_weights("many", i % 4, { i })
        b:record_metric("m", i, i)
      end
    end)
    for layer = 0, 3 do assert.equal(50, #store:weight_versions("many", layer)) end
    assert.equal(200, #store:metrics("m"))
    assert.same({ 200 }, store:get_weights("many", 0):totable())
  end)

  it("nothing is visible before the batch commits", function()
    local seen
    store:batch(function(b)
      b:put_weights("e", 0, { 9 })
      b:put_state("s", "changed")
      seen = { versions = store:weight_versions("e", 0), state = store:get_state("s") }
    end)
    assert.same({ 1 }, seen.versions)
    assert.equal("orig", seen.state)
    assert.same({ 1, 2 }, store:weight_versions("e", 0))
    assert.equal("changed", store:get_state("s"))
  end)

  it("create_checkpoint pins versions written earlier in the same batch", function()
    local id
    store:batch(function(b)
      b:put_weights("e", 0, { 2 })          -- existing layer: v2
      b:put_weights("e", 0, { 3 })          -- v3
      b:put_weights("brand", 5, { 7 })      -- a layer that exists only in this batch
      id = b:create_checkpoint({ system_version = "x" })
      b:put_weights("e", 0, { 4 })          -- after the checkpoint: v4, not pinned
    end)
    local pins = {}
    for _, p in ipairs(store:get_checkpoint(id).pins) do
      pins[#pins + 1] = p.expert_id .. "/" .. p.layer .. "/" .. p.version
    end
    table.sort(pins)
    assert.same({ "brand/5/1", "e/0/3" }, pins)
    assert.is_true((store:verify()))
    store:put_weights("e", 0, { 5 })
    assert.is_true(store:restore_checkpoint(id))
    assert.same({ 3 }, store:get_weights("e", 0):totable())
    assert.same({ 7 }, store:get_weights("brand", 5):totable())
  end)

  it("delete_checkpoint inside a batch", function()
    local keep = store:create_checkpoint({ system_version = "keep" })
    local drop = store:create_checkpoint({ system_version = "drop" })
    store:batch(function(b)
      assert.is_true(b:delete_checkpoint(drop))
      b:put_state("s", "changed")
    end)
    assert.same({ keep }, store:list_checkpoints())
    assert.is_nil(store:get_checkpoint(drop))
    assert.is_true((store:verify()))
    -- and a failed batch does not delete
    pcall(store.batch, store, function(b)
      b:delete_checkpoint(keep)
      error("no")
    end)
    assert.same({ keep }, store:list_checkpoints())
  end)

  it("respects max_weight_versions for several versions written in one batch", function()
    store:close()
    store = assert(synaptic.open(path, { max_weight_versions = 2 }))
    store:batch(function(b)
      for v = 1, 5 do b:put_weights("lim", 0, { v }) end
    end)
    assert.same({ 4, 5 }, store:weight_versions("lim", 0))
  end)

  it("using the batch object after its function returned raises", function()
    local saved
    store:batch(function(b) saved = b end)
    assert.has_error(function() saved:put_state("s", "late") end,
      "attempt to use a batch after its function returned")
    assert.has_error(function() saved:put_weights("e", 0, { 1 }) end,
      "attempt to use a batch after its function returned")
    assert.matches("closed", tostring(saved))
    -- after a failed batch too
    pcall(store.batch, store, function(b) saved = b; error("x") end)
    assert.has_error(function() saved:record_metric("m", 1) end,
      "attempt to use a batch after its function returned")
    untouched()
  end)

  it("a store:batch inside a batch raises and fails the outer one", function()
    local ok, err = pcall(store.batch, store, function(b)
      b:put_state("s", "outer")
      store:batch(function(inner) inner:put_state("t", "inner") end)
    end)
    assert.is_false(ok)
    assert.matches("batch: already inside a batch", err)
    untouched()
    assert.is_nil(store:get_state("t"))
    -- caught, the inner one still wrote nothing, and the outer one commits
    assert.is_true(store:batch(function(b)
      b:put_state("s", "outer")
      local ok2, err2 = pcall(store.batch, store, function(inner) inner:put_state("t", "inner") end)
      assert.is_false(ok2)
      assert.matches("already inside a batch", err2)
    end))
    assert.equal("outer", store:get_state("s"))
    assert.is_nil(store:get_state("t"))
    -- and once the outer batch returned, batches work again
    assert.is_true(store:batch(function(b) b:put_state("t", "later") end))
    assert.equal("later", store:get_state("t"))
  end)

  it("a batch whose function closes the store writes nothing", function()
    local ok, err = pcall(store.batch, store, function(b)
      b:put_state("s", "changed")
      store:close()
    end)
    assert.is_false(ok)
    assert.matches("attempt to use a closed store", err)
    store = assert(synaptic.open(path))
    untouched()
  end)

  it("tostring of a batch says whether it is open", function()
    local inside
    store:batch(function(b) inside = tostring(b) end)
    assert.matches("open", inside)
  end)

  it("closing the store inside the function commits nothing and raises", function()
    local ok, err = pcall(store.batch, store, function(b)
      b:put_state("s", "changed")
      store:close()
    end)
    assert.is_false(ok)
    assert.matches("closed store", err)
    store = assert(synaptic.open(path))
    assert.equal("orig", store:get_state("s"))
  end)

  it("a batch on a closed store raises", function()
    store:close()
    assert.has_error(function() store:batch(function() end) end,
      "attempt to use a closed store")
  end)
end)

describe("store lifecycle", function()
  teardown(function()
    helpers.cleanup()
  end)

  it("close is idempotent and later use raises a clear error", function()
    local path = helpers.tmpdir("life")
    local s = assert(synaptic.open(path))
    s:put_weights("e", 0, { 1 })
    assert.is_true(s:close())
    assert.is_true(s:close())
    local calls = {
      function() return s:put_weights("e", 0, { 1 }) end,
      function() return s:get_weights("e", 0) end,
      function() return s:weight_versions("e", 0) end,
      function() return s:put_config(CFG) end,
      function() return s:get_config("e") end,
      function() return s:list_experts() end,
      function() return s:create_checkpoint({}) end,
      function() return s:get_checkpoint("x") end,
      function() return s:list_checkpoints() end,
      function() return s:restore_checkpoint("x") end,
      function() return s:delete_checkpoint("x") end,
      function() return s:put_state("k", 1) end,
      function() return s:get_state("k") end,
      function() return s:record_metric("m", 1) end,
      function() return s:metrics("m") end,
      function() return s:metric_names() end,
      function() return s:metric_count("m") end,
      function() return s:prune_metrics("m", 1) end,
      function() return s:state_keys() end,
      function() return s:batch(function() end) end,
      function() return s:stats() end,
      function() return s:rocksdb_stats() end,
      function() return s:storage_stats() end,
      function() return s:size_info() end,
      function() return s:verify() end,
      function() return s:compact() end,
      function() return s:backup(path .. "-bk") end,
    }
    for i, fn in ipairs(calls) do
      local ok, err = pcall(fn)
      assert(not ok, "call " .. i .. " on a closed store did not raise")
      assert.matches("attempt to use a closed store", err)
    end
    -- the data is still there for the next opener
    local s2 = assert(synaptic.open(path))
    assert.same({ 1 }, s2:get_weights("e", 0):totable())
    s2:close()
  end)

  it("tostring shows the path, then (closed)", function()
    local path = helpers.tmpdir("tostr")
    local s = assert(synaptic.open(path))
    local text = tostring(s)
    assert.truthy(text:find(path, 1, true), text)
    s:close()
    assert.matches("%(closed%)", tostring(s))
    assert.falsy(tostring(s):find(path, 1, true))
  end)

  it("a <close> variable closes the store at the end of its scope", function()
    local path = helpers.tmpdir("tbc")
    local ref
    do
      local s <close> = assert(synaptic.open(path))
      s:put_state("k", "v")
      ref = s
    end
    assert.matches("%(closed%)", tostring(ref))
    assert.has_error(function() ref:get_state("k") end, "attempt to use a closed store")
    -- closed for real: the lock is released, so it opens again
    local s2 = assert(synaptic.open(path))
    assert.equal("v", s2:get_state("k"))
    s2:close()
  end)

  it("a <close> variable closes the store when an error leaves the scope", function()
    local path = helpers.tmpdir("tbc-err")
    local ref
    local ok = pcall(function()
      local s <close> = assert(synaptic.open(path))
      ref = s
      s:put_state("k", "v")
      error("leaving")
    end)
    assert.is_false(ok)
    assert.matches("%(closed%)", tostring(ref))
    local s2 = assert(synaptic.open(path))
    assert.equal("v", s2:get_state("k"))
    s2:close()
  end)

  it("a second open of a store that is open is nil and a message", function()
    local path = helpers.tmpdir("twice")
    local s = assert(synaptic.open(path))
    s:put_state("k", 1)
    local s2, msg = synaptic.open(path)
    assert.is_nil(s2)
    assert.matches("^cannot open store at '.*': store is already open %(by this or another process%)$", msg)
    -- the first handle is unaffected
    assert.equal(1, s:get_state("k"))
    s:close()
    s2 = assert(synaptic.open(path))
    s2:close()
  end)

  it("a read_only open beside a writer sees committed data", function()
    local path = helpers.tmpdir("ro-beside")
    local s = assert(synaptic.open(path))
    s:put_state("k", "v")
    s:put_weights("e", 0, { 1, 2 })
    local r = assert(synaptic.open(path, { read_only = true }))
    assert.equal("v", r:get_state("k"))
    assert.same({ 1, 2 }, r:get_weights("e", 0):totable())
    r:close()
    s:close()
  end)
end)
