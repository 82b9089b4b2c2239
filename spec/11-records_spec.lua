-- Records besides weights: expert configs, the expert list, checkpoints
-- (with their weight pins), system state and metrics.
local synaptic = require "synaptic"
local helpers = require "helpers"

local function wait_past(t)
  -- the clocks the store uses are sub-second; make sure time has moved on
  while synaptic.now() <= t + 0.002 do end
end

local function config(id, extra)
  local c = {
    expert_id = id,
    domain = "coding",
    parameter_count = 12345,
    learning_rate = 0.001,
    architecture = { layers = { 96, 192, 128, 64 }, activation = "sigmoid" },
  }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function bytes_of(floats)
  return floats:tobytes()
end

local function f32_bytes(t)
  local parts = {}
  for i = 1, #t do parts[i] = string.pack("<f", t[i]) end
  return table.concat(parts)
end

describe("records", function()
  local store

  -- a new empty store for each test of the enclosing describe
  local function fresh_each()
    before_each(function()
      store = assert(synaptic.open(helpers.tmpdir("records")))
    end)
    after_each(function()
      if store then store:close() end
      store = nil
    end)
  end

  -- one store for all tests of the enclosing describe (they use distinct names)
  local function shared()
    setup(function()
      store = assert(synaptic.open(helpers.tmpdir("records-shared")))
    end)
    teardown(function()
      if store then store:close() end
      store = nil
    end)
  end

  teardown(function()
    helpers.cleanup()
  end)

  describe("configs", function()
    shared()

    it("round-trips every field, including a nested architecture table", function()
      local arch = {
        layers = { 64, 128, 64, 32 },
        activation = "sigmoid",
        dropout = 0.25,
        flags = { residual = true, norm = false },
        blocks = { { kind = "dense", units = 64 }, { kind = "dense", units = 32 } },
      }
      local before = synaptic.now()
      assert.is_true(store:put_config({
        expert_id = "reasoning",
        domain = "reasoning",
        parameter_count = 18624,
        learning_rate = 0.0125,
        architecture = arch,
      }))
      local after = synaptic.now()
      local c = store:get_config("reasoning")
      assert.is_table(c)
      assert.equal("reasoning", c.expert_id)
      assert.equal("reasoning", c.domain)
      assert.equal(18624, c.parameter_count)
      assert.equal("integer", math.type(c.parameter_count))
      assert.equal(0.0125, c.learning_rate)
      assert.same(arch, c.architecture)
      assert.is_number(c.created_at)
      assert.is_number(c.updated_at)
      assert.is_true(c.created_at >= before - 1 and c.created_at <= after + 1)
      assert.is_true(c.updated_at >= before - 1 and c.updated_at <= after + 1)
      -- Unix seconds, not milliseconds
      assert.is_true(math.abs(c.created_at - os.time()) < 120)
    end)

    it("accepts any value as architecture", function()
      store:put_config(config("arch-a", { architecture = "mlp-64-32" }))
      store:put_config(config("arch-b", { architecture = 7 }))
      store:put_config(config("arch-c", { architecture = { 1, 2, 3 } }))
      assert.equal("mlp-64-32", store:get_config("arch-a").architecture)
      assert.equal(7, store:get_config("arch-b").architecture)
      assert.same({ 1, 2, 3 }, store:get_config("arch-c").architecture)
    end)

    it("keeps created_at from the first write and advances updated_at", function()
      store:put_config(config("coding"))
      local first = store:get_config("coding")
      wait_past(first.updated_at)
      store:put_config(config("coding", { learning_rate = 0.5, domain = "code" }))
      local second = store:get_config("coding")
      assert.equal(first.created_at, second.created_at)
      assert.is_true(second.updated_at > first.updated_at)
      assert.equal(0.5, second.learning_rate)
      assert.equal("code", second.domain)
      wait_past(second.updated_at)
      store:put_config(config("coding"))
      local third = store:get_config("coding")
      assert.equal(first.created_at, third.created_at)
      assert.is_true(third.updated_at > second.updated_at)
    end)

    it("ignores a created_at given by the caller after the first write", function()
      store:put_config(config("x"))
      local first = store:get_config("x")
      store:put_config(config("x", { created_at = 5 }))
      assert.equal(first.created_at, store:get_config("x").created_at)
    end)

    it("returns plain nil for an unknown expert", function()
      assert.is_nil(store:get_config("nobody"))
      assert.equal(1, select("#", store:get_config("nobody")))
    end)

    it("keeps configs of different experts apart", function()
      store:put_config(config("a", { domain = "one" }))
      store:put_config(config("ab", { domain = "two" }))
      assert.equal("one", store:get_config("a").domain)
      assert.equal("two", store:get_config("ab").domain)
    end)
  end)

  describe("list_experts", function()
    fresh_each()

    it("is empty on a new store", function()
      assert.same({}, store:list_experts())
    end)

    it("is the sorted union of experts with configs and with weights", function()
      store:put_config(config("delta"))
      store:put_config(config("bravo"))
      store:put_weights("charlie", 0, { 1, 2 })
      store:put_weights("alpha", 3, { 1 })
      store:put_weights("alpha", 1, { 1 })
      store:put_weights("delta", 0, { 1 })   -- both config and weights: listed once
      store:put_weights("echo", 0, { 1 })
      assert.same({ "alpha", "bravo", "charlie", "delta", "echo" }, store:list_experts())
    end)

    it("handles ids that are prefixes of each other", function()
      store:put_config(config("a"))
      store:put_config(config("abc"))
      store:put_config(config("b"))
      store:put_weights("ab", 0, { 1 })
      store:put_weights("abc", 0, { 1 })
      store:put_weights("abc", 7, { 1 })
      store:put_weights("a-", 0, { 1 })
      store:put_weights("zz", 2, { 1 })
      local want = { "a", "a-", "ab", "abc", "b", "zz" }
      assert.same(want, store:list_experts())
    end)

    it("lists experts with only weights", function()
      for _, id in ipairs({ "w3", "w1", "w2" }) do
        store:put_weights(id, 0, { 0.5 })
        store:put_weights(id, 1, { 0.5 })
      end
      assert.same({ "w1", "w2", "w3" }, store:list_experts())
    end)
  end)

  describe("checkpoints", function()
    fresh_each()

    local function cp_input()
      return {
        system_version = "1.2.3",
        expert_states = {
          { expert_id = "coding", activation_count = 17, success_rate = 0.75,
            last_updated = 1700000000.5, memory_usage = 4096 },
          { expert_id = "reasoning", activation_count = 0, success_rate = 1.0,
            last_updated = 1700000001, memory_usage = 0 },
        },
        global_metrics = { total_requests = 99, average_response_time = 0.0125,
                           memory_usage = 1048576, disk_usage = 2097152, uptime = 3600.5 },
        metadata = { note = "before training", tags = { "a", "b" }, n = 3 },
      }
    end

    it("returns a UUID and round-trips every field", function()
      local id = store:create_checkpoint(cp_input())
      assert.is_string(id)
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", id)
      local cp = store:get_checkpoint(id)
      local want = cp_input()
      assert.equal(id, cp.id)
      assert.equal(want.system_version, cp.system_version)
      assert.same(want.expert_states, cp.expert_states)
      assert.same(want.global_metrics, cp.global_metrics)
      assert.same(want.metadata, cp.metadata)
      assert.equal("integer", math.type(cp.expert_states[1].activation_count))
      assert.is_number(cp.created_at)
      assert.is_true(math.abs(cp.created_at - os.time()) < 120)
      assert.same({}, cp.pins)
    end)

    it("accepts an empty checkpoint table", function()
      local id = store:create_checkpoint({})
      assert.is_table(store:get_checkpoint(id))
      local id2 = store:create_checkpoint(nil)
      assert.is_table(store:get_checkpoint(id2))
      assert.not_equal(id, id2)
    end)

    it("accepts create_checkpoint() with no argument at all", function()
      -- the binding treats a missing cp like nil: a checkpoint of pins only
      store:put_weights("e", 0, { 1 })
      local id = store:create_checkpoint()
      assert.is_string(id)
      local cp = store:get_checkpoint(id)
      assert.is_table(cp)
      local _, _, info = store:get_weights("e", 0)
      -- a pin names the current write by identity too (restore brings back those bytes)
      assert.same({ { expert_id = "e", layer = 0, version = 1, hlc = info.hlc, origin = info.origin } },
                  cp.pins)
    end)

    it("pins the current version of every expert/layer", function()
      store:put_weights("coding", 0, { 1 })
      store:put_weights("coding", 0, { 2 })
      store:put_weights("coding", 1, { 3 })
      store:put_weights("math", 0, { 4 })
      store:put_weights("math", 0, { 5 })
      store:put_weights("math", 0, { 6 })
      local id = store:create_checkpoint({ system_version = "x" })
      store:put_weights("coding", 0, { 7 })   -- after the checkpoint: not pinned
      local pins = store:get_checkpoint(id).pins
      local got = {}
      for _, p in ipairs(pins) do got[#got + 1] = p.expert_id .. "/" .. p.layer .. "/" .. p.version end
      table.sort(got)
      assert.same({ "coding/0/2", "coding/1/1", "math/0/3" }, got)
    end)

    it("restore makes the pinned data current again, as a new version", function()
      local w1, b1 = helpers.weights(64, 1), helpers.weights(8, 2)
      local w2, b2 = helpers.weights(64, 3), helpers.weights(8, 4)
      local o1 = helpers.weights(10, 5)
      assert.equal(1, store:put_weights("coding", 0, w1, b1, { shape = { 8, 8 } }))
      assert.equal(1, store:put_weights("other", 2, o1))
      local id = store:create_checkpoint({ system_version = "v1" })
      assert.equal(2, store:put_weights("coding", 0, w2, b2, { shape = { 8, 8 } }))
      assert.equal(2, store:put_weights("other", 2, helpers.weights(10, 6)))
      assert.equal(3, store:put_weights("other", 2, helpers.weights(10, 7)))

      assert.is_true(store:restore_checkpoint(id))

      local w, b, info = store:get_weights("coding", 0)
      assert.equal(3, info.version)
      assert.equal(f32_bytes(w1), bytes_of(w))
      assert.equal(f32_bytes(b1), bytes_of(b))
      assert.same({ 8, 8 }, info.shape)
      assert.same({ 1, 2, 3 }, store:weight_versions("coding", 0))
      local o, _, oinfo = store:get_weights("other", 2)
      assert.equal(4, oinfo.version)
      assert.equal(f32_bytes(o1), bytes_of(o))
      -- history is kept: the later version is still there
      local old = store:get_weights("coding", 0, 2)
      assert.equal(f32_bytes(w2), bytes_of(old))
      -- the checkpoint itself is unchanged and still resolves
      local ok = store:verify()
      assert.is_true(ok)
    end)

    it("restore of an unknown id is nil and a message", function()
      local r, msg = store:restore_checkpoint(synaptic.uuid())
      assert.is_nil(r)
      assert.matches("^restore_checkpoint: no checkpoint '[%x-]+'$", msg)
    end)

    it("get of an unknown id is plain nil", function()
      assert.is_nil(store:get_checkpoint(synaptic.uuid()))
      assert.is_nil(store:get_checkpoint("not-a-checkpoint"))
    end)

    it("lists ids oldest first and delete removes one", function()
      assert.same({}, store:list_checkpoints())
      local ids = {}
      for i = 1, 5 do
        ids[i] = store:create_checkpoint({ system_version = tostring(i) })
      end
      assert.same(ids, store:list_checkpoints())
      assert.is_true(store:delete_checkpoint(ids[3]))
      assert.is_nil(store:get_checkpoint(ids[3]))
      assert.same({ ids[1], ids[2], ids[4], ids[5] }, store:list_checkpoints())
      -- deleting it again: nothing there
      local r, msg = store:delete_checkpoint(ids[3])
      assert.is_nil(r)
      assert.matches("^delete_checkpoint: no checkpoint '[%x-]+'$", msg)
      -- the others are untouched
      assert.equal("4", store:get_checkpoint(ids[4]).system_version)
    end)

    it("delete leaves the weights it pinned readable", function()
      store:put_weights("e", 0, { 1, 2, 3 })
      local id = store:create_checkpoint({})
      store:put_weights("e", 0, { 4, 5, 6 })
      assert.is_true(store:delete_checkpoint(id))
      assert.same({ 1, 2 }, store:weight_versions("e", 0))
      assert.same({ 1, 2, 3 }, store:get_weights("e", 0, 1):totable())
      local ok, report = store:verify()
      assert.is_true(ok, report and #report.problems)
    end)
  end)

  describe("state", function()
    shared()

    it("round-trips strings, numbers, booleans and nested tables", function()
      local values = {
        s = "hello",
        bin = "a\0b\255c",
        empty = "",
        i = 42,
        neg = -7,
        big = math.maxinteger,
        f = 3.25,
        t = true,
        fl = false,
        list = { 1, 2, 3, "x" },
        nested = { a = { b = { c = { 1.5, { d = "deep" } } } }, flag = true },
      }
      for k, v in pairs(values) do assert.is_true(store:put_state(k, v)) end
      for k, v in pairs(values) do
        local got = store:get_state(k)
        assert.same(v, got)
      end
    end)

    it("keeps integers and floats apart", function()
      store:put_state("int", 1)
      store:put_state("float", 1.0)
      store:put_state("mix", { 2, 2.0, { n = 3 }, { n = 3.0 } })
      assert.equal("integer", math.type(store:get_state("int")))
      assert.equal("float", math.type(store:get_state("float")))
      local mix = store:get_state("mix")
      assert.equal("integer", math.type(mix[1]))
      assert.equal("float", math.type(mix[2]))
      assert.equal("integer", math.type(mix[3].n))
      assert.equal("float", math.type(mix[4].n))
    end)

    it("overwrites, and nil deletes", function()
      store:put_state("k", "one")
      store:put_state("k", "two")
      assert.equal("two", store:get_state("k"))
      store:put_state("other", "stays")
      assert.is_true(store:put_state("k", nil))
      assert.is_nil(store:get_state("k"))
      assert.equal("stays", store:get_state("other"))
      -- deleting what is absent is fine
      assert.is_true(store:put_state("never", nil))
      assert.is_nil(store:get_state("never"))
    end)

    it("returns plain nil for an absent key", function()
      assert.is_nil(store:get_state("absent"))
      assert.equal(1, select("#", store:get_state("absent")))
    end)

    it("stores the value false (not the same as absent)", function()
      store:put_state("off", false)
      assert.equal(false, store:get_state("off"))
    end)
  end)

  describe("metrics", function()
    shared()

    it("returns samples ascending by timestamp", function()
      store:record_metric("order", 0.5, 30)
      store:record_metric("order", 0.9, 10)
      store:record_metric("order", 0.7, 20)
      store:record_metric("order", 0.1, -5)
      store:record_metric("order", 0.2, 25.5)
      assert.same({
        { timestamp = -5, value = 0.1 },
        { timestamp = 10, value = 0.9 },
        { timestamp = 20, value = 0.7 },
        { timestamp = 25.5, value = 0.2 },
        { timestamp = 30, value = 0.5 },
      }, helpers.points(store:metrics("order")))
    end)

    it("selects a from/to range, bounds included", function()
      for t = 1, 10 do store:record_metric("lat", t * 10, t) end
      local r = store:metrics("lat", 3, 6)
      assert.same({ 3, 4, 5, 6 }, (function()
        local ts = {}
        for i, m in ipairs(r) do ts[i] = m.timestamp end
        return ts
      end)())
      assert.equal(30, r[1].value)
      assert.equal(60, r[4].value)
      assert.equal(7, #store:metrics("lat", 4))          -- from only
      assert.equal(10, #store:metrics("lat", -100, 100))
      assert.same({}, store:metrics("lat", 10.5, 20))
      assert.same({}, store:metrics("lat", 6, 5))
      assert.equal(1, #store:metrics("lat", 5.5, 6.5))
    end)

    it("keeps two samples with the same timestamp", function()
      store:record_metric("acc", 0.5, 100)
      store:record_metric("acc", 0.6, 100)
      store:record_metric("acc", 0.5, 100)
      local r = store:metrics("acc")
      assert.equal(3, #r)
      local vals = {}
      for i, m in ipairs(r) do
        assert.equal(100, m.timestamp)
        vals[i] = m.value
      end
      table.sort(vals)
      assert.same({ 0.5, 0.5, 0.6 }, vals)
    end)

    it("does not mix names that share a prefix", function()
      store:record_metric("loss", 1, 1)
      store:record_metric("loss2", 2, 1)
      store:record_metric("los", 3, 1)
      store:record_metric("loss", 4, 2)
      store:record_metric("loss_x", 5, 1.5)
      local r = helpers.points(store:metrics("loss"))
      assert.same({ { timestamp = 1, value = 1 }, { timestamp = 2, value = 4 } }, r)
      assert.same({ { timestamp = 1, value = 2 } }, helpers.points(store:metrics("loss2")))
      assert.same({ { timestamp = 1, value = 3 } }, helpers.points(store:metrics("los")))
      assert.same({}, store:metrics("lo"))
    end)

    it("defaults the timestamp to now, in Unix seconds", function()
      local before = synaptic.now()
      store:record_metric("m", 3)
      local after = synaptic.now()
      local r = store:metrics("m")
      assert.equal(1, #r)
      assert.equal(3, r[1].value)
      assert.is_true(r[1].timestamp >= before and r[1].timestamp <= after)
      assert.is_true(math.abs(r[1].timestamp - os.time()) < 120)
    end)

    it("is an empty list for a name never recorded", function()
      assert.same({}, store:metrics("never"))
    end)
  end)
end)
