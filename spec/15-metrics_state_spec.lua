-- Lifecycle of metrics and state: listing metric names and state keys,
-- counting and pruning a metric's points (on a store and in a batch).
local synaptic = require "synaptic"
local helpers = require "helpers"

describe("metrics and state", function()
  local path, store

  before_each(function()
    path = helpers.tmpdir("metrics") .. "/db"
    store = assert(synaptic.open(path))
  end)

  after_each(function()
    if store then store:close() end
    store = nil
  end)

  teardown(function()
    helpers.cleanup()
  end)

  local function timestamps(name)
    local t = {}
    for i, p in ipairs(store:metrics(name)) do t[i] = p.timestamp end
    return t
  end

  describe("metric_names", function()
    it("is empty on a new store", function()
      assert.same({}, store:metric_names())
    end)

    it("lists each name once, sorted, however many points it has", function()
      for i = 1, 50 do store:record_metric("loss", 1 / i, i) end
      store:record_metric("accuracy", 0.5, 3)
      store:record_metric("a", 1)
      -- a name that is a prefix of another, and one that sorts right after it
      store:record_metric("loss2", 1, 1)
      store:record_metric("los", 1, 1)
      assert.same({ "a", "accuracy", "los", "loss", "loss2" }, store:metric_names())
    end)

    it("drops a name whose points were all pruned", function()
      store:record_metric("old", 1, 10)
      store:record_metric("new", 1, 10)
      assert.equal(1, store:prune_metrics("old", 11))
      assert.same({ "new" }, store:metric_names())
    end)
  end)

  describe("metric_count", function()
    it("counts points in a range, bounds included", function()
      for i = 1, 10 do store:record_metric("m", i, i) end
      store:record_metric("m", 99, 5)   -- a second point at one timestamp
      assert.equal(11, store:metric_count("m"))
      assert.equal(4, store:metric_count("m", 4, 6))
      assert.equal(3, store:metric_count("m", nil, 3))
      assert.equal(0, store:metric_count("nothing"))
      assert.equal(#store:metrics("m", 2, 7), store:metric_count("m", 2, 7))
    end)

    it("does not count another metric's points", function()
      store:record_metric("m", 1, 1)
      store:record_metric("m2", 1, 1)
      store:record_metric("l", 1, 1)
      assert.equal(1, store:metric_count("m"))
    end)
  end)

  describe("prune_metrics", function()
    it("deletes the points before the bound and returns how many", function()
      for i = 1, 10 do store:record_metric("m", i, i) end
      store:record_metric("other", 1, 1)
      assert.equal(4, store:prune_metrics("m", 5))
      assert.same({ 5, 6, 7, 8, 9, 10 }, timestamps("m"))
      assert.equal(0, store:prune_metrics("m", 5))
      assert.equal(1, store:metric_count("other"))
      assert.equal(6, store:prune_metrics("m", math.huge))
      assert.same({}, store:metrics("m"))
      assert.equal(0, store:prune_metrics("absent", 100))
    end)

    it("handles negative and fractional timestamps", function()
      for _, t in ipairs { -5, -0.5, 0, 0.25, 3 } do store:record_metric("m", 1, t) end
      assert.equal(3, store:prune_metrics("m", 0.25))
      assert.same({ 0.25, 3 }, timestamps("m"))
    end)

    it("survives a reopen", function()
      for i = 1, 4 do store:record_metric("m", i, i) end
      store:prune_metrics("m", 3)
      store:close()
      store = assert(synaptic.open(path))
      assert.same({ 3, 4 }, timestamps("m"))
      local ok, report = store:verify()
      assert.is_true(ok, report and report.problems and report.problems[1] and report.problems[1].error)
    end)

    it("commits with a batch, and not at all if the batch fails", function()
      for i = 1, 4 do store:record_metric("m", i, i) end
      local n
      assert.is_true(store:batch(function(b) n = b:prune_metrics("m", 3) end))
      assert.equal(2, n)
      assert.same({ 3, 4 }, timestamps("m"))
      assert.has_error(function()
        store:batch(function(b)
          b:prune_metrics("m", 100)
          error("changed my mind", 0)
        end)
      end, "changed my mind")
      assert.same({ 3, 4 }, timestamps("m"))
    end)

    it("raises on bad arguments and on a read-only store", function()
      assert.has_error(function() store:prune_metrics("m", 0 / 0) end,
        "prune_metrics: before_timestamp is NaN")
      assert.has_error(function() store:prune_metrics("", 1) end,
        "prune_metrics: metric name must not be empty")
      assert.error_matches(function() store:prune_metrics("m") end, "bad argument #2")
      store:record_metric("m", 1, 1)
      store:close()
      store = assert(synaptic.open(path, { read_only = true }))
      assert.has_error(function() store:prune_metrics("m", 5) end,
        "prune_metrics: store is open read-only")
      assert.equal(1, store:metric_count("m"))
    end)
  end)

  describe("state_keys", function()
    it("lists the keys sorted, and forgets deleted ones", function()
      assert.same({}, store:state_keys())
      store:put_state("zeta", 1)
      store:put_state("alpha", { nested = true })
      store:put_state("mid", "x")
      assert.same({ "alpha", "mid", "zeta" }, store:state_keys())
      store:put_state("mid", nil)
      assert.same({ "alpha", "zeta" }, store:state_keys())
    end)

    it("sees a batch's keys after it commits", function()
      store:batch(function(b) b:put_state("k", 1) end)
      assert.same({ "k" }, store:state_keys())
    end)
  end)
end)
