local synaptic = require "synaptic"
local helpers = require "helpers"

local QUERIES = {
  "Why does the sky look blue? Explain the reason.",
  "Implement a function to debug this program",
  "What is 12 * 7 + 3 = ?",
  "Use the tool to run and execute the script",
  "Translate this sentence into another language",
  "Summarise the context of our previous conversation. Then continue.",
}

local function fake_clock()
  local t = 1000
  return function() return t end, function(dt) t = t + dt end
end

describe("runtime", function()
  after_each(helpers.cleanup)

  it("initialises six experts and a gate and persists them", function()
    local dir = helpers.tmpdir("rt") .. "/db"
    local rt = assert(synaptic.runtime(dir, { seed = 7 }))
    assert.matches("synaptic.runtime", tostring(rt))
    rt:close()
    local store <close> = assert(synaptic.open(dir))
    local experts = store:list_experts()
    assert.same({ "coding", "context", "language", "mathematics", "reasoning", "router", "tool_use" }, experts)
    local cfg = store:get_config("language")
    assert.same({ 128, 256, 128, 64 }, cfg.architecture)
    local w, b, info = store:get_weights("language", 1)
    assert.equal(256 * 128, #w)
    assert.equal(256, #b)
    assert.same({ 256, 128 }, info.shape)
  end)

  it("answers deterministically, and identically after a restart", function()
    local dir = helpers.tmpdir("rt") .. "/db"
    local answers = {}
    do
      local rt <close> = assert(synaptic.runtime(dir, { seed = 3 }))
      for i, q in ipairs(QUERIES) do
        local response, details = rt:process(q)
        assert.is_string(response)
        assert.equal(2, #details.domains)
        assert.is_number(details.latency)
        for _, d in ipairs(details.domains) do
          assert.is_number(details.experts[d].confidence)
          assert.is_number(details.experts[d].relevance)
        end
        answers[i] = response
      end
      for _ = 1, 5 do rt:train(QUERIES[1], "mathematics") end
      for i, q in ipairs(QUERIES) do answers[i] = rt:process(q) end
    end
    local rt <close> = assert(synaptic.runtime(dir, { seed = 999 }))  -- seed ignored: loaded
    for i, q in ipairs(QUERIES) do assert.equal(answers[i], (rt:process(q))) end
  end)

  it("routes by keyword cues", function()
    local rt <close> = assert(synaptic.runtime(helpers.tmpdir("rt") .. "/db"))
    local _, d = rt:process("Implement a function to debug this program")
    assert.equal("coding", d.domains[1])
    _, d = rt:process("Why? Explain the reason, because I wonder")
    assert.equal("reasoning", d.domains[1])
  end)

  it("learns: loss falls and routing follows training", function()
    local rt <close> = assert(synaptic.runtime(helpers.tmpdir("rt") .. "/db"))
    local q = "Implement a function to debug this program"
    local first = rt:train(q, "tool_use")
    local last
    for _ = 1, 60 do last = rt:train(q, "tool_use") end
    assert.is_true(last < first)
    local _, d = rt:process(q)
    assert.equal("tool_use", d.domains[1])
  end)

  it("saves only dirty layers and auto-saves on the interval", function()
    local clock, advance = fake_clock()
    local dir = helpers.tmpdir("rt") .. "/db"
    local rt = assert(synaptic.runtime(dir, { clock = clock, auto_save_interval = 60 }))
    rt:train(QUERIES[2], "coding")
    local store = rt.store
    assert.same({ 1 }, store:weight_versions("router", 1))   -- not yet saved
    advance(61)
    rt:process(QUERIES[3])                                   -- triggers auto-save
    assert.same({ 1, 2 }, store:weight_versions("router", 1))
    assert.same({ 1, 2 }, store:weight_versions("coding", 3))
    assert.same({ 1 }, store:weight_versions("language", 1)) -- untouched: not rewritten
    rt:close()
  end)

  it("keeps auto-saved training when the process exits without closing", function()
    local dir = helpers.tmpdir("rt") .. "/db"
    local script = ([[
      local synaptic = require "synaptic"
      local t = 0
      local rt = assert(synaptic.runtime(%q, { auto_save_interval = 10, clock = function() return t end }))
      for i = 1, 30 do rt:train("Use the tool to run it", "tool_use") end
      t = 11
      rt:process("Use the tool to run it")
      io.write((rt:process("Use the tool to run it")))
      os.exit(0, false)
    ]]):format(dir)
    local f = assert(io.open(dir .. ".lua", "w")); f:write(script); f:close()
    local cmd = ("LUA_PATH=%q LUA_CPATH=%q lua5.4 %s"):format(package.path, package.cpath, dir .. ".lua")
    local ok, _, out = helpers.run(cmd)
    assert.is_true(ok, out)
    local rt <close> = assert(synaptic.runtime(dir))
    assert.equal(out, (rt:process("Use the tool to run it")))
  end)

  it("checkpoints with real measurements and retention", function()
    local dir = helpers.tmpdir("rt") .. "/db"
    local rt <close> = assert(synaptic.runtime(dir, { max_checkpoints = 3 }))
    for _, q in ipairs(QUERIES) do rt:process(q) end
    rt:train(QUERIES[2], "coding")
    local id = assert(rt:save_state("v1"))
    local cp = rt.store:get_checkpoint(id)
    assert.equal("v1", cp.system_version)
    assert.equal(6, cp.global_metrics.total_requests)
    assert.is_true(cp.global_metrics.average_response_time > 0)
    assert.is_true(cp.global_metrics.disk_usage > 0)
    assert.equal(6, #cp.expert_states)
    for i = 1, 5 do rt:train(QUERIES[i], "context"); rt:save_state() end
    local ids = rt:list_checkpoints()
    assert.equal(3, #ids)
    local stats = rt:stats()
    assert.equal(3, stats.checkpoint_count)
    assert.matches("requests", tostring(stats))
  end)

  it("restores all experts or only those listed", function()
    local dir = helpers.tmpdir("rt") .. "/db"
    local rt <close> = assert(synaptic.runtime(dir))
    local q = "Implement a function to debug this program"
    local before = rt:process(q)
    local id = assert(rt:save_state())
    local coding_before = rt.experts.coding:get_layer(3)
    local gate_before = rt.gate:get_layer(1)
    for _ = 1, 40 do rt:train(q, "coding") end
    assert.is_false(rt.experts.coding:get_layer(3) == coding_before)
    local after = rt:process(q)
    assert.not_equal(before, after)
    assert(rt:restore_state(id, { "coding" }))
    assert.is_true(rt.experts.coding:get_layer(3) == coding_before)
    assert.is_false(rt.gate:get_layer(1) == gate_before)   -- not listed: still trained
    assert(rt:restore_state(id))
    assert.equal(before, (rt:process(q)))
  end)

  it("does not grow without bound over 100 save_state calls with retention 3", function()
    local dir = helpers.tmpdir("rt") .. "/db"
    local rt <close> = assert(synaptic.runtime(dir, { max_checkpoints = 3 }))
    local sizes = {}
    for i = 1, 100 do
      rt:train(QUERIES[i % 6 + 1], "coding")
      rt:save_state()
      if i == 20 or i == 100 then
        rt:compact_storage()
        sizes[#sizes + 1] = rt.store:storage_stats().stored_bytes
      end
    end
    assert.equal(3, #rt:list_checkpoints())
    assert.is_true(sizes[2] <= sizes[1] * 1.2, ("%d -> %d"):format(sizes[1], sizes[2]))
    assert.is_true(#rt.store:weight_versions("coding", 1) <= 5)
    assert.is_true(rt:verify_integrity())
  end)

  it("keeps the best checkpoints by a metric beyond the newest ones", function()
    local dir = helpers.tmpdir("rt") .. "/db"
    local rt <close> = assert(synaptic.runtime(dir, { max_checkpoints = 2,
                                                     keep_best = { metric = "success_rate", n = 1 } }))
    local q = "Use the tool to run and execute the script"
    rt:train(q, "tool_use")                 -- correct routing: success 1.0
    local best = assert(rt:save_state())
    for _ = 1, 4 do rt:train(q, "language"); rt:save_state() end
    local ids = rt:list_checkpoints()
    assert.equal(3, #ids)
    assert.equal(best, ids[1])
  end)

  it("backs up, honouring backup_enabled", function()
    local dir = helpers.tmpdir("rt")
    local rt <close> = assert(synaptic.runtime(dir .. "/db"))
    local path = assert(rt:create_backup(dir .. "/bk"))
    assert.equal(dir .. "/bk", path)
    assert.equal(1, #synaptic.list_backups(dir .. "/bk"))
    local off <close> = assert(synaptic.runtime(dir .. "/db2", { backup_enabled = false }))
    local r, msg = off:create_backup(dir .. "/bk2")
    assert.is_nil(r)
    assert.matches("disabled", msg)
  end)

  it("reloads weights that arrived in the store from elsewhere", function()
    local rt <close> = assert(synaptic.runtime(helpers.tmpdir("rt") .. "/db"))
    rt:train(QUERIES[2], "coding")
    assert(rt:flush())
    rt:train(QUERIES[2], "coding")                 -- unsaved: flushed by reload
    local trained = rt.experts.coding:get_layer(3)
    local w, b = rt.experts.coding:get_layer(1)
    local peer = synaptic.floats(#w)
    for i = 1, #peer do peer[i] = 0.001 * (i % 13) end
    assert(rt:reload())                            -- local training saved first
    rt.store:put_weights("coding", 1, peer, b)     -- then a peer's write lands
    assert(rt:reload())
    assert.is_true(rt.experts.coding:get_layer(1) == peer)
    assert.is_true(rt.experts.coding:get_layer(3) == trained)   -- flushed, then read back
    assert.same({}, rt.experts.coding:dirty_layers())
  end)

  it("checks its arguments", function()
    assert.has_error(function() synaptic.runtime(helpers.tmpdir() .. "/db", { bogus = 1 }) end,
                     "runtime: unknown config field 'bogus'")
    local rt <close> = assert(synaptic.runtime(helpers.tmpdir("rt") .. "/db"))
    assert.has_error(function() rt:process(42) end, "process: query must be a string")
    assert.has_error(function() rt:process("") end, "process: query must not be empty")
    assert.has_error(function() rt:train("x", "cooking") end, "train: unknown domain 'cooking'")
    rt:close()
    assert.has_error(function() rt:process("x") end, "attempt to use a closed runtime")
    assert.is_true(rt:close())
  end)
end)
