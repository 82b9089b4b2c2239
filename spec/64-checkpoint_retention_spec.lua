-- The runtime's checkpoints as Orbax / tf.train.CheckpointManager users
-- expect them: keep_best by any measured field, max or min, or an expert's
-- state; one checkpoint every N hours besides the newest; step numbers.
-- The runtime's first retention tests: 11-runtime_spec.
local synaptic = require "synaptic"
local helpers = require "helpers"

local Q = "Use the tool to run and execute the script"

-- A runtime whose clock the test moves.
local function runtime(config)
  local now = { t = 1000 }
  config.clock = function() return now.t end
  local rt = assert(synaptic.runtime(helpers.tmpdir("rt74") .. "/db", config))
  return rt, now
end

local function positions(rt, ids)
  local at = {}
  for i, id in ipairs(rt:list_checkpoints()) do at[id] = i end
  local out = {}
  for i, id in ipairs(ids) do out[i] = at[id] or false end
  return out
end

describe("checkpoint retention", function()
  teardown(function() helpers.cleanup() end)

  it("keep_best ranks a global metric, lower is better with mode = 'min'", function()
    local rt <close>, now = runtime { max_checkpoints = 1, keep_best = { metric = "uptime", n = 1, mode = "min" } }
    local first = assert(rt:save_state())
    for _ = 1, 3 do now.t = now.t + 10; assert(rt:save_state()) end
    local ids = rt:list_checkpoints()
    assert.equal(2, #ids)
    assert.equal(first, ids[1])
    assert.is_true(rt.store:get_checkpoint(ids[1]).global_metrics.uptime
                   < rt.store:get_checkpoint(ids[2]).global_metrics.uptime)
  end)

  it("keep_best ranks an expert's state field", function()
    local rt <close> = runtime { max_checkpoints = 1,
                                 keep_best = { metric = "activation_count", expert = "tool_use", n = 1 } }
    assert(rt:save_state())
    rt:process(Q); rt:process(Q)
    local busiest = assert(rt:save_state())
    local count
    for _, st in ipairs(rt.store:get_checkpoint(busiest).expert_states) do
      if st.expert_id == "tool_use" then count = st.activation_count end
    end
    assert.is_true(count >= 2)
    -- counts only grow: set them back so that the busiest is not the newest
    rt.counters.experts.tool_use.activation_count = 0
    assert(rt:save_state())
    local ids = rt:list_checkpoints()
    assert.equal(2, #ids)
    assert.equal(busiest, ids[1])
  end)

  it("an unknown metric, mode or expert raises naming it", function()
    local dir = helpers.tmpdir("rt74") .. "/db"
    assert.has_error(function() synaptic.runtime(dir, { keep_best = { metric = "no_such_metric", n = 1 } }) end,
                     "runtime: keep_best: unknown metric 'no_such_metric' (global metrics are average_response_time, "
                     .. "disk_usage, memory_usage, success_rate, total_requests, uptime; with expert = name, "
                     .. "activation_count, last_updated, memory_usage, success_rate)")
    assert.has_error(function() synaptic.runtime(dir, { keep_best = { metric = "uptime", n = 1, mode = "best" } }) end,
                     "runtime: keep_best.mode must be \"max\" or \"min\", got 'best'")
    assert.has_error(function()
      synaptic.runtime(dir, { keep_best = { metric = "success_rate", n = 1, expert = "cooking" } })
    end, "runtime: keep_best.expert: unknown expert 'cooking'")
    assert.has_error(function()
      synaptic.runtime(dir, { keep_best = { metric = "uptime", n = 1, expert = "coding" } })
    end, "runtime: keep_best: unknown metric 'uptime' (an expert's state has activation_count, last_updated, "
         .. "memory_usage, success_rate)")
    assert.has_error(function() synaptic.runtime(dir, { keep_every_hours = 0 }) end,
                     "runtime: keep_every_hours must be a number of hours > 0 (or false)")
  end)

  it("keep_every_hours keeps one checkpoint per period besides the newest", function()
    local rt <close>, now = runtime { max_checkpoints = 1, keep_every_hours = 1 }
    local ids = {}
    for i = 1, 6 do                   -- saved every half hour: 0, 0.5, 1, 1.5, 2, 2.5 h
      ids[i] = assert(rt:save_state())
      now.t = now.t + 1800
    end
    assert.same({ 1, false, 2, false, 3, 4 }, positions(rt, ids))
    -- an hour later the newest of before is dropped, the 3 h one kept
    now.t = now.t + 1800
    ids[7] = assert(rt:save_state())
    assert.same({ 1, false, 2, false, 3, false, 4 }, positions(rt, ids))
  end)
end)

describe("checkpoint steps", function()
  teardown(function() helpers.cleanup() end)

  it("saves with a step, finds the latest and restores by step", function()
    local rt <close> = runtime { max_checkpoints = 5 }
    assert.is_nil(rt:latest_step())
    assert(rt:save_state())                                 -- no step: older checkpoints have none
    assert.is_nil(rt:latest_step())
    rt:train(Q, "tool_use")
    local at100 = assert(rt:save_state(100))
    local w100 = rt.store:get_weights("router", 1):tobytes()
    rt:train(Q, "tool_use")
    assert(rt:save_state { step = 200, system_version = "2.0" })
    assert.equal(200, rt:latest_step())
    assert.same({ 100, 200 }, rt:all_steps())
    assert.equal(100, rt.store:get_checkpoint(at100).step)
    assert.not_equal(w100, rt.store:get_weights("router", 1):tobytes())
    assert.is_true(rt:restore_state(100))
    assert.equal(w100, rt.store:get_weights("router", 1):tobytes())
    local ok, err = rt:restore_state(150)
    assert.is_nil(ok)
    assert.equal("no checkpoint for step 150", err)
    assert.has_error(function() rt:save_state(100) end, "save_state: a checkpoint for step 100 exists")
    assert.has_error(function() rt:save_state(-1) end, "save_state: step must be an integer >= 0")
    assert.has_error(function() rt:save_state { steps = 1 } end, "save_state: unknown option 'steps'")
  end)

  it("a checkpoint's step survives the store and is optional", function()
    local s <close> = assert(synaptic.open(helpers.tmpdir("cp74") .. "/db"))
    local a = assert(s:create_checkpoint { system_version = "1", step = 7 })
    local b = assert(s:create_checkpoint { system_version = "1" })
    assert.equal(7, s:get_checkpoint(a).step)
    assert.is_nil(s:get_checkpoint(b).step)
    assert.has_error(function() s:create_checkpoint { step = 1.5 } end,
                     "create_checkpoint: checkpoint.step: integer expected")
  end)
end)
